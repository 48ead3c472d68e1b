"""``coderclip classify``: image files or folders -> top-k classes with scores."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..rows import FORMATS
from . import example_formatter
from ._common import (add_knowledge_args, add_model_args, add_rerank_args, load_knowledge_from_args,
                      load_model, write_json)

EXAMPLES = """\
examples:
  coderclip classify photos/ --model open_clip:ViT-B-32:openai --knowledge food101
  coderclip classify a.jpg b.png --model hf:/models/clip-vit-base-patch32 --classes classes.txt
  coderclip classify photos/ -m open_clip:ViT-B-32:openai -k my_knowledge.json --format csv -o out.csv
  coderclip classify big_folder/ -m open_clip:ViT-B-32:openai -k food101 --format jsonl -o out.jsonl
  coderclip classify --features feats.safetensors -m open_clip:ViT-B-32:openai -k pets.json
"""


def add_parser(sub) -> None:
    p = sub.add_parser("classify", help="classify images (files or folders)",
                       description="Classify images with CODER (or a CLIP baseline) and print the "
                                   "top classes of each image with their probabilities. Results "
                                   "are written batch by batch: an interrupted run keeps what it "
                                   "finished, and running the same command again resumes it.",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    p.add_argument("images", nargs="*", help="image files or folders (searched recursively)")
    p.add_argument("--features", default=None,
                   help="classify precomputed image embeddings (.safetensors/.npy/.npz) instead")
    add_model_args(p)
    add_knowledge_args(p)
    p.add_argument("--method", default="coder-rerank",
                   choices=["coder-rerank", "coder", "clip", "clip-ensemble"])
    add_rerank_args(p)
    p.add_argument("--top", type=int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--format", choices=list(FORMATS), default="table",
                   help="table (default), csv, jsonl (one JSON object per image) or json")
    p.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --output even if an earlier run with other settings wrote it "
                        "(default: resume a run with the same settings)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..classifier import CoderClassifier
    from ..errors import ConfigError
    from ..images import find_images
    from ..pipeline import classify_stream, embedding_batches, image_batches
    from ..rows import RowWriter

    if bool(args.images) == bool(args.features):
        raise ConfigError("give image files/folders or --features FILE (one of the two)")
    encoder = load_model(args)
    knowledge = load_knowledge_from_args(args)
    clf = CoderClassifier(encoder, knowledge, method=args.method, rerank_k=args.rerank_k, tau=args.tau,
                          batch_size=args.batch_size, cache=not args.no_cache,
                          show_progress_bar=sys.stderr.isatty()).fit()
    feats = paths = None
    if args.features:
        from ..features import open_features

        feats = open_features(args.features)   # read block by block, never held whole
        if feats.model and feats.model != encoder.identity:
            raise ConfigError(f"{args.features} holds embeddings of model {feats.model!r}, but "
                              f"--model is {encoder.identity!r}; embed the images with this model "
                              "or pass the model that made the file")
        source = {"features": str(Path(args.features).resolve())}
    else:
        paths = find_images(args.images)
        if not paths:
            raise ConfigError("no image files found in the given paths")
        source = {"images": len(paths)}
    settings = {"model": encoder.identity, "knowledge": clf.bank_.knowledge_digest,
                "method": args.method, "top": args.top, "rerank_k": args.rerank_k, "tau": args.tau,
                **source}
    if args.format == "json" and not args.output:   # one document on stdout: rows are held
        return _json_to_stdout(clf, args, feats, paths)
    with RowWriter(args.output, args.format, settings, overwrite=args.overwrite,
                   extra={"method": args.method}) as writer:
        if writer.complete:
            print(f"coderclip classify: {args.output} is already complete (same settings); "
                  "pass --overwrite to redo it", file=sys.stderr)
            return 0
        if writer.resumed:
            print(f"coderclip classify: resuming {args.output}: {writer.resumed} image(s) already "
                  "done", file=sys.stderr)
        if feats is not None:
            ids = feats.ids or [str(i) for i in range(len(feats))]
            batches = embedding_batches(feats, ids, skip=writer.done)
        else:
            batches = image_batches(encoder, paths, batch_size=args.batch_size,
                                    num_workers=args.workers, show_progress_bar=sys.stderr.isatty(),
                                    skip=writer.done)
        summary = classify_stream(batches, clf.tables_, writer.write, class_names=clf.classes_,
                                  k=args.top, **clf.batch_settings())
    _report_failures(summary.failures)
    return 0


def _json_to_stdout(clf, args, feats, paths) -> int:
    from ..pipeline import classify_stream, embedding_batches, image_batches

    rows: list[dict] = []

    def keep(ids, classes, probs):
        rows.extend({"image": i, "predictions": [{"class": str(c), "probability": float(p)}
                                                  for c, p in zip(cs, ps)]}
                    for i, cs, ps in zip(ids, classes, probs))

    if feats is not None:
        batches = embedding_batches(feats, feats.ids or None)
    else:
        batches = image_batches(clf.encoder, paths, batch_size=args.batch_size, num_workers=args.workers,
                                show_progress_bar=sys.stderr.isatty())
    summary = classify_stream(batches, clf.tables_, keep, class_names=clf.classes_, k=args.top,
                              **clf.batch_settings())
    write_json({"method": args.method, "results": rows}, None)
    _report_failures(summary.failures)
    return 0


def _report_failures(failures) -> None:
    if failures:
        print(f"coderclip classify: skipped {len(failures)} unreadable image(s):", file=sys.stderr)
        for _path, reason in failures:
            print(f"  {reason}", file=sys.stderr)
