"""``coderclip knowledge``: inspect, validate and merge knowledge files and packs."""

from __future__ import annotations

import argparse

from . import example_formatter

EXAMPLES = """\
examples:
  coderclip knowledge show food101
  coderclip knowledge show my.json --class "hot dog"
  coderclip knowledge validate my.json --classes classes.txt
  coderclip knowledge validate my.json --fix -o my_fixed.json
  coderclip knowledge merge attributes_gpt.json contrasts_llama.json --types contrasts --out merged.json
"""


def add_parser(sub) -> None:
    p = sub.add_parser("knowledge", help="show, validate or merge knowledge files",
                       description="Inspect, check and combine knowledge files (or shipped packs).",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    ks = p.add_subparsers(dest="knowledge_command", required=True, metavar="ACTION")

    show = ks.add_parser("show", help="counts per type, or one class's items",
                         description="Print a knowledge file's classes and item counts per type; "
                                     "with --class, that class's items.")
    show.add_argument("source", metavar="FILE_OR_PACK")
    show.add_argument("--class", dest="class_name", default=None, metavar="NAME")
    show.set_defaults(func=run_show)

    val = ks.add_parser("validate", help="check files against the schema (and a class list)",
                        description="Load each file with full validation; with --classes, also "
                                    "check that it covers exactly those classes. Then lint the "
                                    "contrasts: a contrast feature must describe its own class, "
                                    "not compare with the other one ('green skin instead of "
                                    "yellow' also describes the other class and weakens the "
                                    "rerank). Exits 1 on any error or lint finding; --fix writes "
                                    "a copy with comparison tails cut.")
    val.add_argument("sources", nargs="+", metavar="FILE_OR_PACK")
    val.add_argument("--classes", default=None, help="class list the files must match")
    val.add_argument("--fix", action="store_true",
                     help="write a copy with the lint findings fixed (needs -o, one source)")
    val.add_argument("-o", "--output", default=None, metavar="FILE",
                     help="where --fix writes the fixed file (atomically)")
    val.set_defaults(func=run_validate)

    mer = ks.add_parser("merge", help="combine two files with the same classes",
                        description="Take BASE and add (or replace) knowledge types from OTHER. "
                                    "Classes are matched by name, never by position.")
    mer.add_argument("base", metavar="BASE")
    mer.add_argument("other", metavar="OTHER")
    mer.add_argument("-o", "--output", "--out", dest="out", required=True,
                     help="file to write (atomically)")
    mer.add_argument("--types", default=None,
                     help="comma-separated types to take from OTHER (default: all)")
    mer.add_argument("--mode", choices=["union", "replace"], default="union",
                     help="union: append OTHER's new items (default); replace: use OTHER's items")
    mer.set_defaults(func=run_merge)


def run_show(args: argparse.Namespace) -> int:
    from ..knowledge import LIST_FIELDS, load_knowledge

    k = load_knowledge(args.source)
    if args.class_name:
        c = k[args.class_name]
        ident = f", id {c.id}" if c.id else ""
        print(f"{c.name}  (class {k.index(c.name)} of {len(k)}{ident}, domain {k.domain})")
        if c.description:
            print(f"  description: {c.description}")
        for field in LIST_FIELDS:
            print(f"  {field} ({len(getattr(c, field))}):")
            for item in getattr(c, field):
                print(f"    - {item}")
        print(f"  contrasts ({len(c.contrasts)} classes):")
        for other, feats in c.contrasts.items():
            print(f"    vs {other}:")
            for f in feats:
                print(f"      - {f}")
        return 0
    counts = k.counts()
    title = f"{k.name or args.source}: {len(k)} classes, domain {k.domain}"
    print(title)
    for field in LIST_FIELDS:
        n = counts[field]
        have = sum(1 for c in k.classes if getattr(c, field))
        print(f"  {field:<11} {n:>7} items  ({have} classes have some, {n / len(k):.1f} per class)")
    print(f"  {'contrasts':<11} {counts['contrasts']:>7} items  ({counts['contrast_pairs']} class "
          f"pairs, counted per side)")
    for rec in k.provenance:
        what = ", ".join(rec.get("types", [])) or "names"
        model = f" ({rec['model']})" if rec.get("model") else ""
        print(f"  provenance: {rec.get('source')}{model}: {what}; {rec.get('created', '')}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    import sys

    from ..errors import CoderClipError, ConfigError
    from ..knowledge import load_knowledge
    from ..knowledge.lint import fix_contrasts, lint_contrasts

    if args.fix and (not args.output or len(args.sources) != 1):
        raise ConfigError("--fix needs exactly one FILE_OR_PACK and -o/--output FILE for the copy")
    names = None
    if args.classes:
        from ..atg.classes import read_class_list

        names = [s.name for s in read_class_list(args.classes)]
    bad = 0
    for src in args.sources:
        try:
            k = load_knowledge(src)
            if names is not None:
                k = k.align(names)
                if len(k) != len(load_knowledge(src)):
                    raise CoderClipError(f"{src}: has classes that are not in {args.classes}")
        except CoderClipError as e:
            bad += 1
            print(f"INVALID {e}", file=sys.stderr)
            continue
        counts = k.counts()
        print(f"ok {src}: {len(k)} classes, " + ", ".join(
            f"{t} {counts[t]}" for t in ("synonyms", "attributes", "analogous", "contrasts")))
        if args.fix:
            fixed, findings = fix_contrasts(k)
            fixed.save(args.output)
            dropped = sum(1 for f in findings if f.fixed is None)
            print(f"fixed {len(findings)} contrast feature(s) ({dropped} dropped); wrote {args.output}")
            continue
        findings = lint_contrasts(k)
        for f in findings:
            print(f"LINT {src}: {f}", file=sys.stderr)
        if findings:
            bad += 1
            print(f"{src}: {len(findings)} contrast feature(s) compare with the other class; "
                  f"run 'coderclip knowledge validate {src} --fix -o FILE' to cut them",
                  file=sys.stderr)
    return 1 if bad else 0


def run_merge(args: argparse.Namespace) -> int:
    from ..knowledge import load_knowledge

    from ..outputs import check_output_file

    base = load_knowledge(args.base)
    other = load_knowledge(args.other)
    check_output_file(args.out, "--out")
    types = [t.strip() for t in args.types.split(",") if t.strip()] if args.types else None
    merged = base.merge(other, types=types, mode=args.mode)
    merged.save(args.out)
    counts = merged.counts()
    print(f"wrote {args.out}: {len(merged)} classes, " + ", ".join(
        f"{t} {counts[t]}" for t in ("synonyms", "attributes", "analogous", "contrasts")))
    return 0
