"""``coderclip classify``: image files or folders -> top-k classes with scores."""

from __future__ import annotations

import argparse
import csv
import io
import sys

from . import example_formatter
from ._common import (add_knowledge_args, add_model_args, add_rerank_args, load_knowledge_from_args,
                      load_model, positive_int, write_json)

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
    p.add_argument("--top", type=positive_int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--format", choices=["table", "json", "csv"], default="table")
    p.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, ImageReadError
    from ..outputs import check_output_file

    if bool(args.images) == bool(args.features):
        raise ConfigError("give image files/folders or --features FILE (one of the two)")
    # everything that can be checked without the model first: knowledge, inputs, the output path
    knowledge = load_knowledge_from_args(args)
    check_output_file(args.output, "--output")
    failures: list[tuple[str, str]] = []
    if args.features:
        from ..features import load_features

        feats = load_features(args.features)
        names = feats.ids or [str(i) for i in range(len(feats))]
    else:
        from ..images import find_images

        paths = find_images(args.images, problems=failures)
        if not paths:
            raise ImageReadError(f"no image files found in {_listed(args.images)}"
                                 + (f" ({len(failures)} unusable entries)" if failures else ""))
    from ..classifier import CoderClassifier

    encoder = load_model(args)
    clf = CoderClassifier(encoder, knowledge, method=args.method, rerank_k=args.rerank_k, tau=args.tau,
                          batch_size=args.batch_size, cache=not args.no_cache,
                          show_progress_bar=sys.stderr.isatty()).fit()
    if args.features:
        x = feats.embeddings
    else:
        from ..images import encode_image_files

        enc = encode_image_files(encoder, paths, batch_size=args.batch_size, num_workers=args.workers,
                                 show_progress_bar=sys.stderr.isatty())
        failures += enc.failures
        names = [str(paths[i]) for i in enc.kept]
        x = enc.embeddings
    _report_failures(failures)
    if not names:
        raise ImageReadError(f"none of the {len(failures)} image(s) in {_listed(args.images)} could "
                             "be read (reasons above); nothing was written")
    idx, prob = clf.top_k(embeddings=x, k=args.top)
    rows = [{"image": n, "reranked": bool(len(pi) > 1 and pi[0] < max(pi)),
             "predictions": [{"class": str(clf.classes_[c]), "probability": float(p)}
                             for c, p in zip(ci, pi)]}
            for n, ci, pi in zip(names, idx, prob)]
    _emit(rows, args)
    if failures:
        print(f"coderclip classify: {len(names)} image(s) classified, {len(failures)} skipped "
              "(listed above)", file=sys.stderr)
    return 0


def _listed(items) -> str:
    shown = ", ".join(repr(str(i)) for i in items[:3])
    return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _report_failures(failures) -> None:
    if failures:
        print(f"coderclip classify: skipped {len(failures)} unreadable image(s):", file=sys.stderr)
        for _path, reason in failures:
            print(f"  {reason}", file=sys.stderr)


def _emit(rows, args) -> None:
    """Write the rows. After the rerank, the winner comes first even where its stage-1
    probability is below the runner-up's; such rows say ``reranked``."""
    from ..outputs import write_text

    if args.format == "json":
        write_json({"method": args.method, "results": rows}, args.output)
        return
    buf = io.StringIO()
    if args.format == "csv":
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["image", "rank", "class", "probability", "reranked"])
        for r in rows:
            for rank, p in enumerate(r["predictions"], 1):
                w.writerow([r["image"], rank, p["class"], f"{p['probability']:.6f}",
                            int(r["reranked"] and rank == 1)])
    else:
        for r in rows:
            buf.write(f"{r['image']}\n")
            for rank, p in enumerate(r["predictions"], 1):
                mark = "  (chosen by the rerank)" if r["reranked"] and rank == 1 else ""
                buf.write(f"  {rank}. {p['class']:<40} {p['probability']:7.2%}{mark}\n")
    write_text(buf.getvalue(), args.output)
