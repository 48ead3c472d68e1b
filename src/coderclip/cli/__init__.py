"""The ``coderclip`` command line: a thin layer over the Python API.

Each subcommand lives in its own module here and exposes ``add_parser(subparsers)``; the parser it
adds sets ``func`` to a function taking the parsed arguments. Modules must not import torch or
other heavy libraries at import time, so that ``coderclip --help`` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from .._version import __version__
from ..errors import CoderClipError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ["demo", "classify", "evaluate", "generate", "knowledge", "templates", "benchmark",
            "fewshot"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coderclip",
        description="CLIP image classification with CODER (cross-modal neighbour representations).",
        epilog="Run 'coderclip COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"coderclip {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except CoderClipError as e:
        print(f"coderclip {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"coderclip {args.command}: interrupted; finished work is kept", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # e.g. `coderclip classify ... | head`: not an error worth a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def example_formatter(prog: str) -> argparse.HelpFormatter:
    """Help formatter that keeps the line breaks of worked examples in epilogs."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)
