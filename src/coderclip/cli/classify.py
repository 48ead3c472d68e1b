"""``coderclip classify``: images (files, folders, WebDataset tars, Parquet, CSV manifests) or
precomputed embeddings -> top-k classes with scores, printed or written batch by batch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..rows import FORMATS
from . import example_formatter
from ._common import (add_templates_arg, add_knowledge_args, add_model_args, add_rerank_args, load_knowledge_from_args,
                      load_model, positive_int, write_json)

_INPUT_FORMATS = ("files", "csv", "webdataset", "parquet", "embeddings")   # coderclip.scale.FORMATS
_SHARD_SIZE = 4096                                                       # coderclip.scale DEFAULT_SHARD_SIZE

EXAMPLES = """\
examples:
  coderclip classify photos/ --model open_clip:ViT-B-32:openai --knowledge food101
  coderclip classify a.jpg b.png --model hf:/models/clip-vit-base-patch32 --classes classes.txt
  coderclip classify photos/ -m open_clip:ViT-B-32:openai -k my_knowledge.json --format csv -o out.csv
  coderclip classify big_folder/ -m open_clip:ViT-B-32:openai -k food101 --format jsonl -o out.jsonl
  coderclip classify --features feats.safetensors -m open_clip:ViT-B-32:openai -k pets.json
  coderclip classify --features feats.safetensors --classifier my_classifier/   # no model needed
  coderclip classify shards/ -m open_clip:ViT-B-32:openai -k food101 --format parquet -o preds.parquet
  coderclip classify laion-embeddings/ -m open_clip:ViT-B-32:openai -k imagenet -o preds/ --engine ray
  coderclip classify s3://bucket/shards/ -m ... -k ... -o s3://bucket/preds/ --engine ray --address auto
  coderclip classify photo.jpg -m testbed -k testbed --explain      # which texts decided

Inputs are detected by name (--input-format overrides): a folder of .tar shards (WebDataset, as
img2dataset writes them), .parquet files with image bytes or paths, a folder with img_emb/ and
metadata/ (clip-retrieval's embeddings), a path,label .csv manifest, or image files and folders.
Parquet output has the columns key, label, score, top_labels, top_scores. With -o FOLDER (always
with --engine ray) each input shard gets its own Parquet file, and running the same command again
skips the shards already done.

--classifier DIR: a classifier saved with CoderClassifier.save_pretrained (its knowledge, text
bank, method, rerank K and tau); with --features no model is loaded at all, with image files
--model must be the model that built it (checked).
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
    add_model_args(p, required=False)
    add_knowledge_args(p)
    p.add_argument("--classifier", default=None, metavar="DIR",
                   help="use a saved classifier (save_pretrained) instead of -k/--classes")
    p.add_argument("--method", default="coder-rerank",
                   choices=["coder-rerank", "coder", "clip", "clip-ensemble"])
    add_rerank_args(p)
    add_templates_arg(p)
    p.add_argument("--top", type=positive_int, default=5, help="classes shown per image (default 5)")
    p.add_argument("--explain", action="store_true",
                   help="show the texts that contributed most to each answer (JSON and JSON "
                        "lines: an 'explanation' list per image, --top entries; table, json or "
                        "jsonl output of image files or --features)")
    p.add_argument("--format", choices=[*FORMATS, "parquet"], default=None,
                   help="table (default), csv, jsonl (one JSON object per image), json, or parquet "
                        "(the default for -o FOLDER)")
    p.add_argument("--output", "-o", default=None, help="write to this file instead of stdout")
    p.add_argument("--overwrite", action="store_true",
                   help="replace --output even if an earlier run with other settings wrote it "
                        "(default: resume a run with the same settings)")
    g = p.add_argument_group("large inputs")
    g.add_argument("--input-format", default="auto", choices=["auto", *_INPUT_FORMATS],
                   help="how to read the inputs (default: detected from their names)")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process; ray: a Ray Data pipeline (pip install 'coderclip[ray]')")
    g.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. auto or ray://host:10001); default: a local instance")
    g.add_argument("--actors", type=positive_int, default=1,
                   help="model replicas on Ray, one per actor (GPU actors where the cluster has GPUs)")
    g.add_argument("--shard-size", type=positive_int, default=_SHARD_SIZE,
                   help=f"images per shard when files or a manifest are cut into shards (default {_SHARD_SIZE})")
    g.add_argument("--coder-vector", action="store_true",
                   help="Parquet output: add each image's CODER vector (one similarity per knowledge text)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, ImageReadError
    from ..images import find_images
    from ..outputs import check_output_file
    from ..pipeline import classify_stream, embedding_batches, image_batches
    from ..rows import ROW_KEYS, RowWriter

    if bool(args.images) == bool(args.features):
        raise ConfigError("give image files/folders or --features FILE (one of the two)")
    if args.explain and (args.format in ("csv", "parquet")
                         or (args.features is None and _large(args))):
        raise ConfigError("--explain needs --format table, json or jsonl on image files or "
                          "--features (CSV and Parquet rows have no room for the list of texts; "
                          "shard inputs and --engine ray do not explain)")
    if args.features is None and _large(args):
        return _run_large(args)
    args.format = args.format or "table"
    if args.format == "parquet":
        raise ConfigError("--features files are written as table, csv, jsonl or json")
    # everything that can be checked without the model first: knowledge, inputs, the output path
    knowledge = _knowledge(args)
    check_output_file(args.output, "--output")
    feats = paths = None
    problems: list[tuple[str, str]] = []
    if args.features:
        from ..features import open_features

        feats = open_features(args.features)   # read block by block, never held whole
    else:
        paths = find_images(args.images, problems=problems)
        if not paths:
            raise ImageReadError(f"no image files found in {_listed(args.images)}"
                                 + (f" ({len(problems)} unusable entries)" if problems else ""))
    clf, identity = _classifier(args, knowledge)
    if args.features:
        from ..pretrained import model_identity

        if feats.model and model_identity(feats.model) != model_identity(identity):
            raise ConfigError(f"{args.features} holds embeddings of model {feats.model!r}, but "
                              f"the classifier's model is {identity!r}; embed the images with this "
                              "model or pass the model that made the file")
        if feats.shape[1] != clf.bank_.embed_dim:
            from ..errors import InputError

            raise InputError(f"{args.features} holds {feats.shape[1]}-d embeddings but the model "
                             f"{identity!r} makes {clf.bank_.embed_dim}-d ones; embed the images "
                             "with this model or pass the model that made the file")
        source = {"features": str(Path(args.features).resolve())}
    else:
        source = {"images": len(paths)}
    settings = {"model": identity, "knowledge": clf.bank_.knowledge_digest,
                "method": clf.method, "top": args.top, "rerank_k": clf.rerank_k, "tau": clf.tau,
                "templates": clf.bank_.templates_version, "rows": ROW_KEYS, **source, **({"explain": True} if args.explain else {})}
    if args.format == "json" and not args.output:   # one document on stdout: rows are held
        return _json_to_stdout(clf, args, feats, paths, problems)
    written = [0]
    with RowWriter(args.output, args.format, settings, overwrite=args.overwrite,
                   extra={"method": clf.method}) as writer:
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
            batches = image_batches(clf.encoder, paths, batch_size=args.batch_size,
                                    num_workers=args.workers, show_progress_bar=sys.stderr.isatty(),
                                    skip=writer.done)
        write = writer.write
        if args.explain:
            batches, write = _with_explanations(clf, args.top, batches, write)
        summary = _stream_until_interrupted(
            lambda write: classify_stream(batches, clf.tables_, write, class_names=clf.classes_,
                                          k=args.top, **clf.scoring_settings()),
            write, written, args.output, writer.resumed)
    return _finish(summary.failures + problems, written[0] + writer.resumed, args)


def _knowledge(args):
    """The knowledge from -k/--classes, or ``None`` with --classifier (which holds its own)."""
    from ..errors import ConfigError

    if not args.classifier:
        return load_knowledge_from_args(args)
    given = [o for o, v in (("-k/--knowledge", args.knowledge), ("--classes", args.classes),
                            ("--templates", args.templates)) if v]
    if given:
        raise ConfigError(f"--classifier {args.classifier} holds its own knowledge and templates; "
                          f"leave out {', '.join(given)}")
    if args.images and not args.model:
        raise ConfigError("classifying image files needs the image tower: pass --model (the "
                          "model that built the classifier), or give --features FILE")
    return None


def _classifier(args, knowledge):
    """The fitted classifier and its model identity: loaded from --classifier (with --model only
    when given), or built from --model and the knowledge."""
    from ..classifier import CoderClassifier
    from ..errors import ConfigError

    if args.classifier:
        encoder = load_model(args) if args.model else None
        clf = CoderClassifier.from_pretrained(args.classifier, encoder=encoder)
        return clf, clf.bank_.encoder_identity
    if not args.model:
        raise ConfigError("give --model MODEL (or --classifier DIR, a saved classifier)")
    encoder = load_model(args)
    clf = CoderClassifier(encoder, knowledge, method=args.method, rerank_k=args.rerank_k,
                          tau=args.tau, batch_size=args.batch_size, cache=not args.no_cache,
                          show_progress_bar=sys.stderr.isatty(), templates=args.templates).fit()
    return clf, encoder.identity


def _with_explanations(clf, k: int, batches, write):
    """``batches`` passed through, remembering the one being scored, and a ``write`` that adds
    each image's explanation (computed from that batch's embeddings) to its row."""
    current = {}

    def tracked():
        for b in batches:
            current["batch"] = b
            yield b

    def explained(ids, classes, probs, reranked=None):
        b = current["batch"]
        assert list(ids) == list(b.ids), "rows are written for the batch just scored"
        why = clf.explain(embeddings=b.embeddings, k=k)
        write(ids, classes, probs, reranked, extras=[{"explanation": w["explanation"]} for w in why])

    return tracked(), explained


def _stream_until_interrupted(stream, write, written: list[int], output, resumed: int):
    """Run ``stream(write)``; the first Ctrl-C lets the batch in hand be written, then stops with
    a message saying how many images are kept and how to continue."""
    from ..errors import Interrupted
    from ..interrupt import finish_batch_on_interrupt, stop_requested

    def message() -> str:
        n = written[0] + resumed
        if output:
            return (f"interrupted: {n} image(s) are classified and kept in {output}; run the same "
                    "command again to continue with the rest")
        return (f"interrupted: {written[0]} image(s) were printed; nothing can be resumed from the "
                "screen (use -o FILE to keep results across runs)")

    def write_then_check(ids, classes, probs, reranked=None):
        write(ids, classes, probs, reranked)
        written[0] += len(ids)
        if stop_requested():
            raise Interrupted(message())

    with finish_batch_on_interrupt("the batch in hand"):
        try:
            return stream(write_then_check)
        except KeyboardInterrupt:
            raise Interrupted(message()) from None


def _finish(failures, classified: int, args) -> int:
    """Report unreadable inputs once; no image at all is an input error, not an empty success."""
    from ..errors import ImageReadError

    _report_failures(failures)
    if classified == 0 and failures:
        raise ImageReadError(f"none of the {len(failures)} image(s) in {_listed(args.images)} "
                             "could be read (reasons above); no results")
    return 0


def _listed(items) -> str:
    shown = ", ".join(repr(str(i)) for i in items[:3])
    return shown + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def _json_to_stdout(clf, args, feats, paths, problems) -> int:
    from ..pipeline import classify_stream, embedding_batches, image_batches
    from ..rows import prediction_row

    rows: list[dict] = []

    def keep(ids, classes, probs, reranked=None, extras=None):
        n = len(ids)
        rows.extend({**prediction_row(i, cs, ps, r), **(e or {})} for i, cs, ps, r, e in
                    zip(ids, classes, probs, reranked if reranked is not None else [False] * n,
                        extras or [None] * n))

    if feats is not None:
        batches = embedding_batches(feats, feats.ids or None)
    else:
        batches = image_batches(clf.encoder, paths, batch_size=args.batch_size, num_workers=args.workers,
                                show_progress_bar=sys.stderr.isatty())
    write = keep
    if args.explain:
        batches, write = _with_explanations(clf, args.top, batches, keep)
    summary = classify_stream(batches, clf.tables_, write, class_names=clf.classes_, k=args.top,
                              **clf.scoring_settings())
    if rows:
        write_json({"method": clf.method, "results": rows}, None)
    return _finish(summary.failures + problems, len(rows), args)


def _report_failures(failures) -> None:
    if failures:
        print(f"coderclip classify: skipped {len(failures)} unreadable image(s):", file=sys.stderr)
        for _path, reason in failures:
            print(f"  {reason}", file=sys.stderr)


def _large(args) -> bool:
    """Shard inputs, Parquet, output folders and Ray go through coderclip.scale."""
    from ..scale import detect_format

    fmt = args.input_format if args.input_format != "auto" else detect_format(args.images)
    folder = args.output is not None and args.format in (None, "parquet") and \
        "." not in Path(args.output).name
    return fmt != "files" or args.engine == "ray" or args.format == "parquet" or folder


def _run_large(args) -> int:
    from ..errors import EXIT_PARTIAL, ConfigError
    from ..scale import classify, format_summary

    given = [o for o, v in (("--classifier", args.classifier), ("--templates", args.templates)) if v]
    if given:
        raise ConfigError(f"{' and '.join(given)} work with image files, folders and --features; "
                          "shard inputs, Parquet output and --engine ray take -m and -k")
    if not args.model:
        raise ConfigError("give --model MODEL")
    knowledge = load_knowledge_from_args(args)
    summary = classify(args.images, args.model, knowledge, args.output,
                       input_format=args.input_format, output_format=args.format, engine=args.engine,
                       method=args.method, rerank_k=args.rerank_k, tau=args.tau, top=args.top,
                       batch_size=args.batch_size, shard_size=args.shard_size,
                       with_vector=args.coder_vector, device=args.device, precision=args.precision,
                       cache=not args.no_cache, decode_threads=args.workers, address=args.address,
                       workers=args.actors, overwrite=args.overwrite,
                       progress=sys.stderr.isatty() or args.engine == "ray")
    print(format_summary(summary), file=sys.stderr)
    return EXIT_PARTIAL if summary["failed_shards"] else 0   # finished shards are kept
