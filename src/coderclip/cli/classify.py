"""``coderclip classify``: image files or folders -> top-k classes with scores."""

from __future__ import annotations

import argparse
import csv
import io
import sys

from . import example_formatter
from ._common import (add_knowledge_args, add_templates_arg, add_model_args, add_rerank_args, load_knowledge_from_args,
                      load_model, write_json)

EXAMPLES = """\
examples:
  coderclip classify photos/ --model open_clip:ViT-B-32:openai --knowledge food101
  coderclip classify a.jpg b.png --model hf:/models/clip-vit-base-patch32 --classes classes.txt
  coderclip classify photos/ -m open_clip:ViT-B-32:openai -k my_knowledge.json --format csv -o out.csv
  coderclip classify --features feats.safetensors -m open_clip:ViT-B-32:openai -k pets.json
"""


def add_parser(sub) -> None:
    p = sub.add_parser("classify", help="classify images (files or folders)",
                       description="Classify images with CODER (or a CLIP baseline) and print the "
                                   "top classes of each image with their probabilities.",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    p.add_argument("images", nargs="*", help="image files or folders (searched recursively)")
    p.add_argument("--features", default=None,
                   help="classify precomputed image embeddings (.safetensors/.npy/.npz) instead")
    add_model_args(p)
    add_knowledge_args(p)
    p.add_argument("--method", default="coder-rerank",
                   choices=["coder-rerank", "coder", "clip", "clip-ensemble"])
    add_rerank_args(p)
    add_templates_arg(p)
    p.add_argument("--top", type=int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..classifier import CoderClassifier
    from ..errors import ConfigError
    from ..images import encode_image_files, find_images

    if bool(args.images) == bool(args.features):
        raise ConfigError("give image files/folders or --features FILE (one of the two)")
    encoder = load_model(args)
    knowledge = load_knowledge_from_args(args)
    clf = CoderClassifier(encoder, knowledge, method=args.method, rerank_k=args.rerank_k, tau=args.tau,
                          batch_size=args.batch_size, cache=not args.no_cache,
                          show_progress_bar=sys.stderr.isatty(), templates=args.templates).fit()
    failures: list[tuple[str, str]] = []
    if args.features:
        from ..features import load_features

        feats = load_features(args.features)
        names = feats.ids or [str(i) for i in range(len(feats))]
        x = feats.embeddings
    else:
        paths = find_images(args.images)
        if not paths:
            raise ConfigError("no image files found in the given paths")
        enc = encode_image_files(encoder, paths, batch_size=args.batch_size, num_workers=args.workers,
                                 show_progress_bar=sys.stderr.isatty())
        failures = enc.failures
        names = [str(paths[i]) for i in enc.kept]
        x = enc.embeddings
    idx, prob = clf.top_k(embeddings=x, k=args.top) if len(names) else ([], [])
    rows = [{"image": n, "predictions": [{"label": str(clf.classes_[c]), "score": float(p)}
                                          for c, p in zip(ci, pi)]}
            for n, ci, pi in zip(names, idx, prob)]
    _emit(rows, args)
    if failures:
        print(f"coderclip classify: skipped {len(failures)} unreadable image(s):", file=sys.stderr)
        for path, reason in failures:
            print(f"  {reason}", file=sys.stderr)
    return 0


def _emit(rows, args) -> None:
    if args.format == "json":
        write_json({"method": args.method, "results": rows}, args.output)
        return
    buf = io.StringIO()
    if args.format == "csv":
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "rank", "label", "score"])
        for r in rows:
            for rank, p in enumerate(r["predictions"], 1):
                w.writerow([r["image"], rank, p["label"], f"{p['score']:.6f}"])
    else:
        for r in rows:
            buf.write(f"{r['image']}\n")
            for rank, p in enumerate(r["predictions"], 1):
                buf.write(f"  {rank}. {p['label']:<40} {p['score']:7.2%}\n")
    if args.output:
        from pathlib import Path

        from .._io import atomic_write_text

        atomic_write_text(Path(args.output), buf.getvalue())
    else:
        sys.stdout.write(buf.getvalue())
