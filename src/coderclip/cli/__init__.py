"""The ``coderclip`` command line: a thin layer over the Python API.

Each subcommand lives in its own module here and exposes ``add_parser(subparsers)``; the parser it
adds sets ``func`` to a function taking the parsed arguments. Modules must not import torch or
other heavy libraries at import time, so that ``coderclip --help`` stays instant.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import io
import logging
import os
import sys
import traceback

from .._version import __version__

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS = ["demo", "classify", "evaluate", "generate", "knowledge", "templates", "benchmark",
            "fewshot", "serve"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coderclip",
        description="CLIP image classification with CODER (cross-modal neighbour representations).",
        epilog="Run 'coderclip COMMAND --help' for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"coderclip {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.add_argument("--debug", action="store_true",
                        help="print the full Python traceback of an error (for bug reports)")
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
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, also after the command
    parser = build_parser()
    try:
        args = parser.parse_args([a for a in argv if a != "--debug"])
    except SystemExit as e:  # a usage error (argparse printed it): report its status, as run does
        if e.code in (0, None):
            raise
        return int(e.code) if isinstance(e.code, int) else 2
    args.debug = debug
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _prepare_stdout()
    from ..errors import EXIT_INTERRUPTED

    try:
        code = int(args.func(args) or 0)
        _flush_stdout()
        return code
    except BrokenPipeError:
        # e.g. `coderclip classify ... | head`: the reader has all it wanted; not an error
        _silence_stdout()
        return 0
    except KeyboardInterrupt:
        _say(args, _interrupted(args), debug=args.debug)
        return EXIT_INTERRUPTED
    except BaseException as e:  # noqa: BLE001 - the one place that turns failures into a message
        if isinstance(e, SystemExit):
            raise
        message, code = describe_failure(e)
        _say(args, message, debug=args.debug)
        return code


#: Commands that save image features to the cache as they go (a rerun reads them back).
_CACHES_IMAGE_FEATURES = ("evaluate", "benchmark", "fewshot")


def _interrupted(args) -> str:
    """The Ctrl-C line for a command without its own: what a rerun reuses, if anything."""
    no_cache = getattr(args, "no_cache", None)   # None: the command has no cache
    if no_cache is None or no_cache:
        return "interrupted; run the command again"
    if args.command in _CACHES_IMAGE_FEATURES:
        return ("interrupted; run the command again (text embeddings and image features already "
                "saved in the cache are reused)")
    return "interrupted; run the command again (text embeddings already saved in the cache are reused)"


def describe_failure(e: BaseException) -> tuple[str, int]:
    """One line for the user and the exit status for any exception (docs/errors.md lists them)."""
    from ..errors import EXIT_INPUT, EXIT_PARTIAL, CoderClipError

    if isinstance(e, CoderClipError):
        return str(e), e.exit_code
    if isinstance(e, _StdoutError):
        return str(e), EXIT_INPUT
    if isinstance(e, OSError) and e.filename is not None:
        what = os.fsdecode(e.filename)
        reason = e.strerror or type(e).__name__
        hint = _OS_HINTS.get(type(e), "check the path and its permissions")
        return f"{what!r}: {reason}; {hint}", EXIT_INPUT
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
        return "the disk is full (No space left on device); free some space and run again", EXIT_INPUT
    if isinstance(e, UnicodeEncodeError):
        bad = e.object[e.start:e.end] if isinstance(e.object, str) else "?"
        return (f"the text {bad!r} cannot be written in the {e.encoding} encoding; set "
                "PYTHONIOENCODING=utf-8, or write to a file with -o/--output"), EXIT_INPUT
    if isinstance(e, MemoryError):
        return ("out of memory; use a smaller --batch-size or fewer --workers, or run on a machine "
                "with more memory"), EXIT_PARTIAL
    if isinstance(e, RecursionError):
        return "an input is nested too deeply to read; check the files given", EXIT_INPUT
    detail = " ".join(str(e).split())[:200]
    return (f"internal error ({type(e).__name__}{': ' + detail if detail else ''}); run again with "
            "--debug for the details and report them"), EXIT_PARTIAL


_OS_HINTS = {
    PermissionError: "choose a folder you can write to (or read), or fix its permissions",
    IsADirectoryError: "give a file name, not a folder",
    NotADirectoryError: "a part of the path is a file, not a folder",
    FileNotFoundError: "check the path",
}


def _say(args, message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"coderclip {args.command}: error: {message}", file=sys.stderr, flush=True)


class _StdoutError(OSError):
    """Results meant for standard output cannot be written there."""


class _ClosedStdout(io.TextIOBase):
    """Stands in for a closed standard output: writing says so in one line."""

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        raise _StdoutError("standard output is closed; write the results to a file with "
                           "-o/--output (or --report/--out), or do not close stdout")


def _prepare_stdout() -> None:
    """File names that are not UTF-8 print as their own bytes; a closed stdout fails clearly."""
    if sys.stdout is None:
        sys.stdout = _ClosedStdout()
        return
    try:
        sys.stdout.reconfigure(errors="surrogateescape")
    except (AttributeError, ValueError, io.UnsupportedOperation):
        pass


def _flush_stdout() -> None:
    """Flush now so that a full disk (/dev/full) is reported here, not at interpreter exit."""
    try:
        sys.stdout.flush()
    except (AttributeError, ValueError):
        return
    except BrokenPipeError:
        raise
    except OSError as e:
        _silence_stdout()
        raise _StdoutError(f"cannot write to standard output: {e.strerror or e}; write the "
                           "results to a file with -o/--output instead") from e


def _silence_stdout() -> None:
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit


def example_formatter(prog: str) -> argparse.HelpFormatter:
    """Help formatter that keeps the line breaks of worked examples in epilogs."""
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)
