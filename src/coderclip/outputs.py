"""Checking output paths before the work and writing results to them (or to standard output).

Commands call :func:`check_output_file` / :func:`check_output_dir` first, so that an unwritable
destination is reported in one line before minutes of work, not after. Text is written as UTF-8
with ``surrogateescape``: a file name that is not valid UTF-8 is written back as its own bytes.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from .errors import OutputError

#: How text outputs are encoded: names that are not UTF-8 keep their original bytes.
TEXT_ENCODING, TEXT_ERRORS = "utf-8", "surrogateescape"


def _why(e: OSError) -> str:
    hints = {PermissionError: "choose a folder you can write to, or fix its permissions",
             IsADirectoryError: "give a file name, not a folder",
             NotADirectoryError: "a part of the path is a file, not a folder",
             FileExistsError: "a part of the path is a file, not a folder"}
    return f"{e.strerror or type(e).__name__}; {hints.get(type(e), 'choose another path')}"


def check_output_dir(path: str | os.PathLike, option: str = "output folder") -> Path:
    """Create ``path`` (and parents) if needed and prove it writable with a probe file."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputError(f"{option} {os.fsdecode(p)!r} is a file, not a folder; give a folder")
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".coderclip-probe-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(f"cannot write to {option} {os.fsdecode(p)!r}: {_why(e)}") from None
    return p


def check_output_file(path: str | os.PathLike | None, option: str = "output file") -> Path | None:
    """Check that ``path`` can be written (``None`` or ``-``: standard output); an existing file is
    left untouched until the real write replaces it."""
    if path is None or str(path) == "-":
        return None
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{option} {os.fsdecode(p)!r} is a folder; give a file name")
    if p.exists() and not os.access(p, os.W_OK) and not os.access(p.parent, os.W_OK):
        raise OutputError(f"{option} {os.fsdecode(p)!r} is not writable; choose another path")
    check_output_dir(p.parent if str(p.parent) else ".", option=f"the folder of {option} {os.fsdecode(p)!r}")
    return p


def write_text(text: str, path: str | os.PathLike | None) -> None:
    """Write ``text`` atomically to ``path``, or to standard output for ``None`` / ``-``."""
    if path is None or str(path) == "-":
        sys.stdout.write(text)
        return
    from ._io import atomic_write_bytes

    atomic_write_bytes(Path(path), text.encode(TEXT_ENCODING, TEXT_ERRORS))


def display_path(path: str | os.PathLike) -> str:
    """A path as text for messages and reports (``str`` of a ``PathLike``, bytes decoded the
    way the file system does)."""
    return os.fsdecode(os.fspath(path))
