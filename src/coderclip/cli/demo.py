"""``coderclip demo``: the offline demo on the shipped testbed model (no network, no arguments)."""

from __future__ import annotations

import argparse
import sys

from . import example_formatter
from ._common import positive_int, unit_interval

EXAMPLES = """\
examples:
  coderclip demo
  coderclip demo --out /tmp/demo --tau 0.3 --rerank-k 5
  coderclip demo --seeds 20240417,20240418 --per-class 20

Classifies fresh test sets of the testbed (45 everyday concepts, 50 rendered images each), one per
test seed (5 fixed seeds), with the small CLIP-style model that ships with coderclip, using CLIP's
name prompt and template ensemble, the description baselines, CODER and CODER + rerank, and prints
each as mean ± std over the seeds, with the ablation P -> +Att -> +Ana -> +Syn -> +rerank. The
rerank's tau and K are chosen on labelled validation images (their own seed) unless given.
Writes OUT/report.json (with the per-seed table) and OUT/chart.png. See docs/testbed.md.
"""


def add_parser(sub) -> None:
    from ..defaults import DEFAULT_TAU, DEFAULT_TOP_K

    p = sub.add_parser("demo", help="offline demo: CLIP vs CODER on the shipped testbed",
                       description="Run CLIP and CODER on the testbed world with the shipped model "
                                   "(offline, CPU, about a minute).",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    p.add_argument("-o", "--output", "--out", dest="out", default="coderclip-demo", help="folder for report.json and chart.png "
                                                           "(default ./coderclip-demo)")
    p.add_argument("--weights", default=None, help="image tower weights (default: the shipped ones)")
    p.add_argument("--per-class", type=positive_int, default=None,
                   help="test images per class (default 50, the recorded setting)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    p.add_argument("--rerank-k", type=positive_int, default=None,
                   help="candidates the one-vs-one rerank considers (default: chosen on validation "
                        f"images; the library default is {DEFAULT_TOP_K})")
    p.add_argument("--tau", type=unit_interval, default=None,
                   help="rerank samples whose p(top1) - p(top2) < tau (default: chosen on "
                        f"validation images; the library default is {DEFAULT_TAU})")
    p.add_argument("--seeds", default=None,
                   help="comma-separated test seeds (default: the 5 fixed seeds the record uses)")
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
    seeds = tc.TEST_SEEDS
    if args.seeds is not None:
        try:
            seeds = tuple(int(x) for x in args.seeds.split(",") if x.strip())
        except ValueError:
            raise ConfigError(f"--seeds must be comma-separated integers, got {args.seeds!r}") from None
        if not seeds:
            raise ConfigError("--seeds must name at least one seed")
    from ..outputs import check_output_dir

    check_output_dir(args.out, "--out")
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else None
    report = run_demo(args.out, weights=args.weights, per_class=per_class, device=args.device,
                      tau=args.tau, top_k=args.rerank_k, cache=not args.no_cache, log=log, seeds=seeds)
    print("coderclip demo: a small CLIP-style model trained offline on a rendered world "
          "(docs/testbed.md)")
    print(f"mean ± std over {len(seeds)} test seeds ({per_class} images per class each)\n")
    print(format_summary(report))
    p, rr = report["protocol"], report["rerank"]
    where = (f"chosen on {p['selection']['images']} validation images (seed {p['selection']['seed']})"
             if p["selection"] else "given")
    print(f"tau = {p['tau']:g} ({p['tau_source']}), K = {p['top_k']} ({p['top_k_source']}): {where}; "
          f"rerank gain {rr['gain']:+.2f} ± {rr['gain_std']:.2f} points")
    rec = recorded_accuracies()
    default_run = (args.weights is None and per_class == tc.TEST_IMAGES_PER_CLASS and args.tau is None
                   and args.rerank_k is None and tuple(seeds) == tc.TEST_SEEDS)
    if rec and default_run:
        now = headline(report)
        off = {k: (now.get(k), v) for k, v in rec.items() if now.get(k) is None or abs(now[k] - v) > 0.5}
        print("\nmatches the accuracies recorded with the shipped weights" if not off else
              f"\nnote: differs from the recorded accuracies: {off}")
    secs = report["provenance"]["seconds"]["total"]
    print(f"\nreport: {os.path.join(args.out, 'report.json')}  chart: {os.path.join(args.out, 'chart.png')}"
          f"  ({secs:.0f} s)")
    return 0
