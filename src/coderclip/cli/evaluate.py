"""``coderclip evaluate``: labelled images -> accuracy of CLIP, CLIP-ensemble, CODER and
CODER+rerank side by side, with a JSON report."""

from __future__ import annotations

import argparse
import sys

from . import example_formatter
from ._common import (add_decode_arg, add_knowledge_args, add_methods_arg, add_model_args,
                      add_rerank_args, add_templates_arg, load_knowledge_from_args, load_model,
                      write_json)

EXAMPLES = """\
examples:
  coderclip evaluate data/val/ --model open_clip:ViT-B-32:openai --knowledge food101
  coderclip evaluate manifest.csv -m hf:/models/siglip-base -k knowledge.json -o report.json
  coderclip evaluate data/test/ --val data/val/ -m open_clip:ViT-B-32:openai -k food101
  coderclip evaluate val.csv -m open_clip:ViT-B-32:openai -k imagenet --engine ray --address auto

DATA is a folder with one sub-folder of images per class (the sub-folder name is the class name),
or a CSV file with the columns path,label. Labels are read only after all predictions are made.
With --val, the rerank's tau and K are chosen on those labelled validation images (never on DATA);
without it they are the fixed --tau and --rerank-k. The accuracy-vs-tau sweep on DATA is post-hoc.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy of CLIP vs CODER on labelled images",
                       description="Evaluate CLIP (name prompt), CLIP (template ensemble), "
                                   "WaffleCLIP, DCLIP, CuPL-style, CODER and CODER + rerank on a "
                                   "labelled image set, from the same knowledge and text bank.",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    p.add_argument("data", help="folder with one sub-folder per class, or a path,label CSV")
    add_model_args(p, features=True)
    add_decode_arg(p)
    add_knowledge_args(p)
    add_rerank_args(p)
    add_methods_arg(p)
    p.add_argument("--val", default=None, metavar="DATA",
                   help="labelled validation images (same layout and classes as DATA): choose tau "
                        "and K on them instead of using --tau and --rerank-k")
    p.add_argument("-o", "--output", "--report", dest="report", default=None,
                   help="write the JSON report here")
    p.add_argument("--predictions", default=None, metavar="FILE",
                   help="write each image's top-5 classes and scores per method to this .csv or "
                        ".parquet file")
    add_templates_arg(p)
    g = p.add_argument_group("large datasets")
    g.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="ray: embed the images on a Ray cluster (pip install 'coderclip[ray]'); "
                        "the report is the same")
    g.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. auto); default: a local instance")
    g.add_argument("--actors", type=int, default=1, help="model replicas on Ray (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..datasets import open_dataset
    from ..evaluation.run import evaluate
    from ..outputs import check_output_file
    from ..reports.tables import format_summary

    check_output_file(args.report, "--output")
    if args.predictions:
        from ..evaluation.per_image import predictions_format

        predictions_format(args.predictions)   # a bad name fails before any work
        check_output_file(args.predictions, "--predictions")
    knowledge = load_knowledge_from_args(args, class_names=None) if (args.knowledge or args.classes) else None
    dataset = open_dataset(args.data, class_names=knowledge.class_names if knowledge else None)
    if knowledge is None:
        knowledge = load_knowledge_from_args(args, class_names=dataset.class_names)
    else:
        knowledge, dataset = _only_present_classes(args.data, knowledge, dataset)
    val = open_dataset(args.val, class_names=dataset.class_names) if args.val else None
    encoder = load_model(args)
    encoded_batches = None
    if args.engine == "ray":
        import functools

        from ..scale.ray_engine import ray_encoded_batches

        encoded_batches = functools.partial(ray_encoded_batches, model=args.model,
                                            address=args.address, workers=args.actors,
                                            device=args.device, precision=args.precision)
    report = evaluate(encoder, knowledge, dataset, tau=args.tau, top_k=args.rerank_k,
                      batch_size=args.batch_size, num_workers=args.workers, cache=not args.no_cache,
                      show_progress_bar=sys.stderr.isatty(),
                      knowledge_source=args.knowledge, templates=args.templates,
                      predictions=args.predictions, methods=args.methods,
                      encoded_batches=encoded_batches, decode=args.decode, val_dataset=val)
    p = report["protocol"]
    if p["selection"]:
        print(f"tau {p['tau']:g} and K {p['top_k']} chosen on {p['selection']['images']} validation images")
    print(format_summary(report))
    if args.report:
        from pathlib import Path

        from ..reports.charts import confusion_chart

        write_json(report, args.report)
        chart = confusion_chart(report, Path(args.report).with_suffix(".confused.png"))
        print(f"report written to {args.report} (most confused pairs: {chart})")
    if args.predictions:
        print(f"per-image predictions written to {args.predictions}")
    return 0


def _only_present_classes(data: str, knowledge, dataset):
    """For a folder of class folders, score against the classes it has folders for (as
    ``benchmark -d folder`` does), not every class of a larger knowledge file."""
    from pathlib import Path

    from ..datasets import open_dataset
    from ..datasets.base import class_folders, folder_name
    from ..names import normalize_name

    if not Path(data).is_dir():
        return knowledge, dataset
    present = {normalize_name(folder_name(f.name)) for f in class_folders(data)}
    keep = [n for n in knowledge.class_names if normalize_name(n) in present]
    if len(keep) == len(knowledge):
        return knowledge, dataset
    print(f"coderclip evaluate: scoring against the {len(keep)} classes that have a folder in "
          f"{data!r} (the knowledge has {len(knowledge)})", file=sys.stderr)
    knowledge = knowledge.align(keep)
    return knowledge, open_dataset(data, class_names=knowledge.class_names)
