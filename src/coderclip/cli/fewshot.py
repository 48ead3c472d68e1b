"""``coderclip fewshot``: CODER-Adapter beside Tip-Adapter and zero-shot CLIP under the standard
few-shot protocol, with α, β tuned on validation data only."""

from __future__ import annotations

import argparse
import sys

from . import example_formatter
from ._common import (add_knowledge_args, add_model_args, load_knowledge_from_args, load_model,
                      non_negative_float, non_negative_int, positive_float, positive_int)

EXAMPLES = """\
examples:
  coderclip fewshot --dataset oxford_pets --root ~/data/oxford_pets -m open_clip:ViT-B-32:openai \\
      --shots 1 2 4 8 16 --seeds 1 2 3
  coderclip fewshot --data my_images/ -m testbed -k knowledge.json --shots 1 4 16 --views 4 -o runs/mine

--data FOLDER needs FOLDER/train/, FOLDER/val/ and FOLDER/test/, each with one sub-folder of images
per class. For each seed and K, K images per class are drawn from train/ and min(K, 4) from val/;
α and β are searched on those validation images, and the test labels are read once, at the end.
Writes fewshot.json, fewshot.md and fewshot.png (accuracy versus shots) into --output-dir.
"""


def add_parser(sub) -> None:
    from ..fewshot.defaults import (DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_REFINE, DEFAULT_SEEDS,
                                    DEFAULT_SHOTS, DEFAULT_VIEWS)

    p = sub.add_parser("fewshot", help="few-shot CODER-Adapter vs Tip-Adapter vs zero-shot",
                       description="Few-shot classification with a training-free cache: "
                                   "CODER-Adapter beside Tip-Adapter and zero-shot CLIP, mean ± std "
                                   "over seeds, hyper-parameters tuned on validation data only.",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    src = p.add_argument_group("data (one of the two)")
    src.add_argument("--dataset", default=None,
                     help="a registered benchmark (coderclip.datasets.LOADERS), with --root")
    src.add_argument("--root", default=None, help="the benchmark's folder on disk")
    src.add_argument("--data", default=None,
                     help="a folder with train/, val/ and test/ sub-folders of class folders")
    add_model_args(p, features=True)
    add_knowledge_args(p)
    g = p.add_argument_group("protocol")
    g.add_argument("--shots", type=positive_int, nargs="+", default=list(DEFAULT_SHOTS),
                   help=f"shots per class (default {' '.join(map(str, DEFAULT_SHOTS))})")
    g.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS),
                   help=f"seeds (default {' '.join(map(str, DEFAULT_SEEDS))})")
    g.add_argument("--methods", nargs="+", default=["tip-adapter", "coder-adapter"],
                   choices=["tip-adapter", "coder-adapter"], help="adapters to run (default both)")
    g.add_argument("--views", type=non_negative_int, default=DEFAULT_VIEWS,
                   help=f"augmented views averaged per support image (default {DEFAULT_VIEWS}; "
                        "0: no augmentation)")
    g.add_argument("--alpha", type=non_negative_float, default=DEFAULT_ALPHA,
                   help=f"alpha of the validation-free setting (default {DEFAULT_ALPHA})")
    g.add_argument("--beta", type=positive_float, default=DEFAULT_BETA,
                   help=f"beta of the validation-free setting (default {DEFAULT_BETA})")
    g.add_argument("--refine", type=non_negative_int, default=DEFAULT_REFINE,
                   help=f"points per axis of the refined grid around the coarse best "
                        f"(default {DEFAULT_REFINE})")
    p.add_argument("-o", "--output", "--output-dir", dest="output_dir", default=None,
                   help="where the reports go (default: fewshot-<dataset>)")
    p.set_defaults(func=run)


def _splits(args):
    from ..errors import ConfigError
    from ..fewshot import folder_splits, loader_splits

    if bool(args.dataset) == bool(args.data):
        raise ConfigError("give --dataset NAME --root DIR, or --data FOLDER (one of the two)")
    if args.dataset:
        if not args.root:
            raise ConfigError(f"--dataset {args.dataset} needs --root, the folder that holds it")
        return loader_splits(args.dataset, args.root)
    return folder_splits(args.data, domain=args.domain or "generic")


def run(args: argparse.Namespace) -> int:
    from ..fewshot import Augmentation, SearchSpace, format_summary, run_fewshot, write_report
    from ..knowledge.packs import has_pack

    from ..outputs import check_output_dir

    from ..fewshot.sampling import check_shots

    train, val, test = _splits(args)
    check_shots(args.shots, train.labels(), len(train.class_names))  # before the model loads
    name = args.dataset or train.name
    out_dir = check_output_dir(args.output_dir or f"fewshot-{name}", "--output-dir")
    if not args.knowledge and not args.classes and args.dataset and has_pack(args.dataset):
        args.knowledge = args.dataset          # the shipped knowledge pack of that benchmark
    knowledge = load_knowledge_from_args(args, class_names=train.class_names)
    knowledge.align(train.class_names)   # knowledge that misses a class fails before the model loads
    if not args.knowledge:
        print("coderclip fewshot: no knowledge given: CODER vectors use the class-name prompts only",
              file=sys.stderr)
    encoder = load_model(args)
    report = run_fewshot(
        encoder, knowledge, train, val, test, shots=args.shots, seeds=args.seeds,
        methods=args.methods, augmentation=Augmentation(views=args.views),
        search=SearchSpace(refine=args.refine), fixed=(args.alpha, args.beta),
        batch_size=args.batch_size, num_workers=args.workers, cache=not args.no_cache,
        show_progress_bar=sys.stderr.isatty(), knowledge_source=args.knowledge)
    paths = write_report(report, out_dir)
    print(format_summary(report))
    print("\nreports written: " + ", ".join(str(p) for p in paths.values()))
    return 0
