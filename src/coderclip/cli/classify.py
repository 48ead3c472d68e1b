"""``coderclip classify``: images (files, folders, WebDataset tars, Parquet, CSV manifests) or
precomputed embeddings -> top-k classes with scores, printed or written batch by batch."""

from __future__ import annotations

import argparse
import io
import sys

from . import example_formatter

_FORMATS = ("files", "csv", "webdataset", "parquet", "embeddings")   # coderclip.scale.FORMATS
_SHARD_SIZE = 4096                                                 # coderclip.scale DEFAULT_SHARD_SIZE
from ._common import (add_knowledge_args, add_model_args, add_rerank_args, load_knowledge_from_args,
                      load_model, write_json)

EXAMPLES = """\
examples:
  coderclip classify photos/ --model open_clip:ViT-B-32:openai --knowledge food101
  coderclip classify a.jpg b.png --model hf:/models/clip-vit-base-patch32 --classes classes.txt
  coderclip classify photos/ -m open_clip:ViT-B-32:openai -k my_knowledge.json --format csv -o out.csv
  coderclip classify --features feats.safetensors -m open_clip:ViT-B-32:openai -k pets.json
  coderclip classify shards/ -m open_clip:ViT-B-32:openai -k food101 --format parquet -o preds.parquet
  coderclip classify laion-embeddings/ -m open_clip:ViT-B-32:openai -k imagenet -o preds/ --engine ray
  coderclip classify s3://bucket/shards/ -m ... -k ... -o preds/ --engine ray --address auto

Inputs are detected by name (--input-format overrides): a folder of .tar shards (WebDataset, as
img2dataset writes them), .parquet files with image bytes or paths, a folder with img_emb/ and
metadata/ (clip-retrieval's embeddings), a path,label .csv manifest, or image files and folders.
Rows of parquet/csv/jsonl output: key, label, score, top_labels, top_scores. With -o FOLDER
(and always with --engine ray) each input shard gets its own Parquet file and a rerun of the same
command skips the shards already done.
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
    p.add_argument("--top", type=int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--format", choices=["table", "json", "csv", "jsonl", "parquet"], default=None,
                   help="output format (default: table on screen, parquet for -o FOLDER)")
    p.add_argument("--output", "-o", default=None,
                   help="write to this file (or folder of per-shard Parquet files) instead of stdout")
    g = p.add_argument_group("large inputs")
    g.add_argument("--input-format", default="auto", choices=["auto", *_FORMATS],
                   help="how to read the inputs (default: detected from their names)")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process; ray: a Ray Data pipeline (pip install 'coderclip[ray]')")
    g.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. auto or ray://host:10001); default: a local instance")
    g.add_argument("--actors", type=int, default=1,
                   help="model replicas on Ray, one per actor (GPU actors where the cluster has GPUs)")
    g.add_argument("--shard-size", type=int, default=_SHARD_SIZE,
                   help=f"images per shard when files or a manifest are cut into shards (default {_SHARD_SIZE})")
    g.add_argument("--coder-vector", action="store_true",
                   help="add each image's CODER vector (one similarity per knowledge text) to the rows")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..classifier import CoderClassifier
    from ..errors import ConfigError
    from ..images import encode_image_files, find_images

    if bool(args.images) == bool(args.features):
        raise ConfigError("give image files/folders or --features FILE (one of the two)")
    if args.features is None and _streaming(args):
        return _run_streaming(args)
    args.format = args.format or "table"
    encoder = load_model(args)
    knowledge = load_knowledge_from_args(args)
    clf = CoderClassifier(encoder, knowledge, method=args.method, rerank_k=args.rerank_k, tau=args.tau,
                          batch_size=args.batch_size, cache=not args.no_cache,
                          show_progress_bar=sys.stderr.isatty()).fit()
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
    rows = [{"image": n, "predictions": [{"class": str(clf.classes_[c]), "probability": float(p)}
                                          for c, p in zip(ci, pi)]}
            for n, ci, pi in zip(names, idx, prob)]
    _emit(rows, args)
    if failures:
        print(f"coderclip classify: skipped {len(failures)} unreadable image(s):", file=sys.stderr)
        for path, reason in failures:
            print(f"  {reason}", file=sys.stderr)
    return 0


def _streaming(args) -> bool:
    """Shard inputs, row formats, folders and Ray go through coderclip.scale."""
    from ..scale import detect_format

    if args.format in ("csv", "jsonl", "parquet") or args.engine == "ray":
        return True
    fmt = args.input_format if args.input_format != "auto" else detect_format(args.images)
    if fmt != "files" and args.format in ("table", "json"):
        from ..errors import ConfigError

        raise ConfigError(f"{fmt} inputs are written as rows: use --format parquet, csv or jsonl "
                          "with -o FILE (or -o FOLDER)")
    return fmt != "files" or (args.output is not None and args.format is None)


def _run_streaming(args) -> int:
    from ..errors import ConfigError
    from ..scale import classify, format_summary

    fmt = args.format if args.format not in (None, "table", "json") else None
    if args.output is None and fmt not in ("csv", "jsonl"):
        raise ConfigError("give -o FILE or -o FOLDER: predictions are written batch by batch")
    knowledge = load_knowledge_from_args(args)
    summary = classify(args.images, args.model, knowledge, args.output or "-",
                       input_format=args.input_format, output_format=fmt, engine=args.engine,
                       method=args.method, rerank_k=args.rerank_k, tau=args.tau, top=args.top,
                       batch_size=args.batch_size, shard_size=args.shard_size,
                       with_vector=args.coder_vector, device=args.device, precision=args.precision,
                       cache=not args.no_cache, decode_threads=args.workers, address=args.address,
                       workers=args.actors, progress=sys.stderr.isatty() or args.engine == "ray")
    print(format_summary(summary), file=sys.stderr)
    return 0 if not summary["failed_shards"] else 1


def _emit(rows, args) -> None:
    if args.format == "json":
        write_json({"method": args.method, "results": rows}, args.output)
        return
    buf = io.StringIO()
    for r in rows:
        buf.write(f"{r['image']}\n")
        for rank, p in enumerate(r["predictions"], 1):
            buf.write(f"  {rank}. {p['class']:<40} {p['probability']:7.2%}\n")
    if args.output:
        from pathlib import Path

        from .._io import atomic_write_text

        atomic_write_text(Path(args.output), buf.getvalue())
    else:
        sys.stdout.write(buf.getvalue())
