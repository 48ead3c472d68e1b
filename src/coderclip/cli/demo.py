"""``coderclip demo``: the offline demo on the shipped testbed model (no network, no arguments)."""

from __future__ import annotations

import argparse
import sys

from . import example_formatter
from ._common import positive_int, unit_interval

EXAMPLES = """\
examples:
  coderclip demo
  coderclip demo --out /tmp/demo --tau 0.3

Classifies the testbed's fixed test set (45 everyday concepts, 50 rendered images each) with the
small CLIP-style model that ships with coderclip, using CLIP's name prompt, CODER and CODER +
rerank, and prints their accuracies side by side with the ablation P -> +Att -> +Ana -> +Syn ->
+rerank. Writes OUT/report.json and OUT/chart.png. See docs/testbed.md.
"""


def add_parser(sub) -> None:
    from ..defaults import DEFAULT_TAU, DEFAULT_TOP_K

    p = sub.add_parser("demo", help="offline demo: CLIP vs CODER on the shipped testbed",
                       description="Run CLIP and CODER on the testbed world with the shipped model "
                                   "(offline, CPU, about a minute).",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    p.add_argument("--out", default="coderclip-demo", help="folder for report.json and chart.png "
                                                           "(default ./coderclip-demo)")
    p.add_argument("--weights", default=None, help="image tower weights (default: the shipped ones)")
    p.add_argument("--per-class", type=positive_int, default=None,
                   help="test images per class (default 50, the recorded setting)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    p.add_argument("--rerank-k", type=positive_int, default=DEFAULT_TOP_K,
                   help=f"candidates the one-vs-one rerank considers (default {DEFAULT_TOP_K})")
    p.add_argument("--tau", type=unit_interval, default=DEFAULT_TAU,
                   help=f"rerank samples whose p(top1) - p(top2) < tau (default {DEFAULT_TAU})")
    p.add_argument("--no-cache", action="store_true", help="do not use the text-embedding cache")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from ..errors import ConfigError
    from ..reports.tables import format_summary
    from ..testbed import classes as tc
    from ..testbed.demo import headline, recorded_accuracies, run_demo

    per_class = args.per_class if args.per_class is not None else tc.TEST_IMAGES_PER_CLASS
    if per_class < 1:
        raise ConfigError(f"--per-class must be at least 1, got {per_class}")
    if not 0.0 <= args.tau <= 1.0:
        raise ConfigError(f"--tau must be within [0, 1], got {args.tau}")
    if args.rerank_k < 1:
        raise ConfigError(f"--rerank-k must be at least 1, got {args.rerank_k}")
    from ..outputs import check_output_dir

    check_output_dir(args.out, "--out")
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else None
    report = run_demo(args.out, weights=args.weights, per_class=per_class, device=args.device,
                      tau=args.tau, top_k=args.rerank_k, cache=not args.no_cache, log=log)
    print("coderclip demo: a small CLIP-style model trained offline on a rendered world "
          "(docs/testbed.md)\n")
    print(format_summary(report))
    rec = recorded_accuracies()
    default_run = (args.weights is None and per_class == tc.TEST_IMAGES_PER_CLASS
                   and args.tau == _default("tau") and args.rerank_k == _default("top_k"))
    if rec and default_run:
        now = headline(report)
        off = {k: (now.get(k), v) for k, v in rec.items() if now.get(k) is None or abs(now[k] - v) > 0.5}
        print("\nmatches the accuracies recorded with the shipped weights" if not off else
              f"\nnote: differs from the recorded accuracies: {off}")
    secs = report["provenance"]["seconds"]["total"]
    print(f"\nreport: {os.path.join(args.out, 'report.json')}  chart: {os.path.join(args.out, 'chart.png')}"
          f"  ({secs:.0f} s)")
    return 0


def _default(name: str) -> float:
    from ..defaults import DEFAULT_TAU, DEFAULT_TOP_K

    return {"tau": DEFAULT_TAU, "top_k": DEFAULT_TOP_K}[name]
