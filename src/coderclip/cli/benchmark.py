"""``coderclip benchmark``: standard datasets × models -> accuracy of every method, ablations,
rerank report, τ/K sweeps; written as JSON, Markdown and PNG charts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import example_formatter
from ._common import MODEL_HELP, add_methods_arg, add_rerank_args, non_negative_int, positive_int

EXAMPLES = """\
examples:
  coderclip benchmark --dataset food101 --root /data/food-101 --model open_clip:ViT-B-32:openai --out runs/food
  coderclip benchmark --dataset dtd --root /data/dtd --dataset eurosat --root /data/eurosat \\
      --model open_clip:ViT-B-32:openai --model open_clip:ViT-B-16:openai --tau-from val --out runs/two
  coderclip benchmark --dataset folder --root my_photos/ --model hf:/models/clip --knowledge mine.json --out runs/mine

--dataset and --root pair up in order (one --root per --dataset); --knowledge, when given, pairs up
the same way (default: the shipped pack named like the dataset, else class names only).
Datasets: imagenet, imagenet_v2, caltech101, dtd, eurosat, fgvc_aircraft, food101, flowers102,
oxford_pets, stanford_cars, sun397, ucf101, cub200, places365, cifar10, cifar100, folder, csv
(layouts: docs/benchmark.md). Labels are read only after every prediction is made.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("benchmark", help="evaluate models on standard datasets (JSON, Markdown, charts)",
                       description="Zero-shot benchmark: CLIP (name prompt), CLIP (template "
                                   "ensemble), CODER, CODER + rerank and the ablation ladder, on "
                                   "standard datasets read from local disk.",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    g = p.add_argument_group("datasets")
    g.add_argument("--dataset", "-d", action="append", required=True, metavar="NAME",
                   help="dataset name (repeat for several)")
    g.add_argument("--root", "-r", action="append", required=True, metavar="DIR",
                   help="the dataset's folder (one per --dataset, in the same order)")
    g.add_argument("--knowledge", "-k", action="append", default=None, metavar="PACK_OR_FILE",
                   help="knowledge file or shipped pack name (one per --dataset; default: the "
                        "pack named like the dataset)")
    m = p.add_argument_group("models")
    m.add_argument("--model", "-m", action="append", required=True, help=MODEL_HELP + " (repeatable)")
    m.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    m.add_argument("--precision", default=None, choices=["fp32", "fp16", "bf16"],
                   help="default: fp16 on GPU, fp32 on CPU")
    m.add_argument("--batch-size", type=positive_int, default=64, help="images per batch (default 64)")
    m.add_argument("--workers", type=non_negative_int, default=None, help="image decoding processes (default: up to 4)")
    m.add_argument("--no-cache", action="store_true",
                   help="do not read or write the text-embedding and image-feature caches (the "
                        "latter let a killed run resume)")
    add_rerank_args(p)
    add_methods_arg(p)
    s = p.add_argument_group("protocol")
    s.add_argument("--tau-from", choices=["auto", "val", "fixed"], default="auto",
                   help="val: choose tau on each dataset's val split (its labels), then apply it to "
                        "test; fixed: use --tau; auto (default): val where the dataset has a val "
                        "split, else --tau")
    s.add_argument("--k-from", choices=["auto", "val", "fixed"], default="auto",
                   help="the same for the rerank K (fixed: --rerank-k)")
    s.add_argument("--seed", type=int, default=0, help="random seed, recorded in the report (default 0)")
    p.add_argument("-o", "--output", "--out", dest="out", required=True, help="output folder (report.json, report.md, charts/)")
    p.add_argument("--no-charts", action="store_true", help="write the JSON and Markdown reports only")
    p.add_argument("--predictions", choices=["csv", "parquet"], default="csv",
                   help="format of the per-image predictions written to OUTPUT/predictions/ "
                        "(default csv)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.suite import BenchmarkDataset, run_benchmark
    from ..reports.benchmark import write_benchmark
    from ..errors import ConfigError

    if len(args.dataset) != len(args.root):
        raise ConfigError(f"{len(args.dataset)} --dataset but {len(args.root)} --root; give one "
                          "--root per --dataset, in the same order")
    knowledge = args.knowledge or [None] * len(args.dataset)
    if len(knowledge) != len(args.dataset):
        raise ConfigError(f"{len(args.dataset)} --dataset but {len(knowledge)} --knowledge; give "
                          "none, or one per --dataset in the same order")
    from ..outputs import check_output_dir

    check_output_dir(args.out, "--out")
    datasets = [BenchmarkDataset(n, r, k) for n, r, k in zip(args.dataset, args.root, knowledge)]
    report = run_benchmark(datasets, args.model, tau=args.tau, top_k=args.rerank_k,
                           methods=args.methods,
                           tau_from=args.tau_from, k_from=args.k_from, seed=args.seed,
                           device=args.device, precision=args.precision, batch_size=args.batch_size,
                           num_workers=args.workers, cache=not args.no_cache,
                           show_progress_bar=sys.stderr.isatty(),
                           predictions_dir=Path(args.out) / "predictions",
                           predictions_format=args.predictions)
    paths = write_benchmark(report, args.out, charts=not args.no_charts)
    for row in report["runs"]:
        methods = "  ".join(f"{v['label']} {v['top1']:.2f}" for v in row["methods"].values())
        print(f"{row['dataset']['name']} / {row['model']}: {methods}")
    print(f"report written to {paths['json']} and {paths['markdown']} "
          f"({sum(k.startswith('chart:') for k in paths)} charts)")
    return 0
