"""``coderclip templates``: the prompt templates of each domain preset."""

from __future__ import annotations

import argparse
import json
import sys

from . import example_formatter

EXAMPLES = """\
examples:
  coderclip templates list
  coderclip templates list --domain pet
  coderclip templates list --domain pet --format json > my_templates.json
  coderclip classify photos/ -m open_clip:ViT-B-32:openai -k pets.json --templates my_templates.json

Placeholders: {c} the class name, {feature} an attribute or contrast feature, {other} the
look-alike (analogous) or the other class (contrast). Synonyms use the name template.
"""


def add_parser(sub) -> None:
    p = sub.add_parser("templates", help="show the prompt templates of each domain",
                       description="Show how knowledge becomes sentences: the templates of each "
                                   "domain preset, per text type.",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    ts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    lst = ts.add_parser("list", help="list the domains and their templates",
                        epilog=EXAMPLES, formatter_class=example_formatter)
    lst.add_argument("--domain", default=None, help="only this domain")
    lst.add_argument("--format", choices=["text", "json"], default="text",
                     help="json: with --domain, a file that --templates accepts")
    lst.set_defaults(func=run_list)


def run_list(args: argparse.Namespace) -> int:
    from ..knowledge.templates import DOMAINS, TEMPLATES_VERSION, get_domain

    domains = [get_domain(args.domain)] if args.domain else [DOMAINS[n] for n in sorted(DOMAINS)]
    if args.format == "json":
        data = domains[0].to_dict() if args.domain else {d.name: d.to_dict() for d in domains}
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return 0
    out = [f"templates version {TEMPLATES_VERSION}"]
    for d in domains:
        out.append(f"\n{d.name}  (e.g. {d.name_prompt('ice cream')!r})")
        for kind, value in d.to_dict().items():
            items = value if isinstance(value, list) else [value]
            out.append(f"  {kind}:")
            out.extend(f"    {t}" for t in items)
    sys.stdout.write("\n".join(out) + "\n")
    return 0
