"""``coderclip evaluate``: labelled images -> accuracy of CLIP, CLIP-ensemble, CODER and
CODER+rerank side by side, with a JSON report."""

from __future__ import annotations

import argparse
import sys

from . import example_formatter
from ._common import (add_knowledge_args, add_methods_arg, add_model_args, add_rerank_args,
                      load_knowledge_from_args, load_model, write_json)

EXAMPLES = """\
examples:
  coderclip evaluate data/val/ --model open_clip:ViT-B-32:openai --knowledge food101
  coderclip evaluate manifest.csv -m hf:/models/siglip-base -k knowledge.json --report report.json

DATA is a folder with one sub-folder of images per class (the sub-folder name is the class name),
or a CSV file with the columns path,label. Labels are read only after all predictions are made.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy of CLIP vs CODER on labelled images",
                       description="Evaluate CLIP (name prompt), CLIP (template ensemble), "
                                   "WaffleCLIP, DCLIP, CuPL-style, CODER and CODER + rerank on a "
                                   "labelled image set, from the same knowledge and text bank.",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    p.add_argument("data", help="folder with one sub-folder per class, or a path,label CSV")
    add_model_args(p)
    add_knowledge_args(p)
    add_rerank_args(p)
    add_methods_arg(p)
    p.add_argument("--report", default=None, help="write the JSON report here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..datasets import open_dataset
    from ..evaluation.run import evaluate
    from ..reports.tables import format_summary

    knowledge = load_knowledge_from_args(args, class_names=None) if (args.knowledge or args.classes) else None
    dataset = open_dataset(args.data, class_names=knowledge.class_names if knowledge else None)
    if knowledge is None:
        knowledge = load_knowledge_from_args(args, class_names=dataset.class_names)
    encoder = load_model(args)
    report = evaluate(encoder, knowledge, dataset, tau=args.tau, top_k=args.rerank_k,
                      batch_size=args.batch_size, num_workers=args.workers, cache=not args.no_cache,
                      show_progress_bar=sys.stderr.isatty(),
                      knowledge_source=args.knowledge, methods=args.methods)
    print(format_summary(report))
    if args.report:
        write_json(report, args.report)
        print(f"report written to {args.report}")
    return 0
