"""Generic file helpers used by every stage: atomic writes, hashing, safe file names.

This module imports nothing from coderclip but the leaf module ``errors``, so any module may
use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync and a rename,
    so a crash leaves either the old file or the new one, never half of one.

    The file gets the permissions a plain ``open`` would give (``0o666`` less the umask). A
    destination that cannot be written raises :class:`~coderclip.errors.OutputError` naming it.
    """
    from .errors import OutputError  # a leaf module: no cycle

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise OutputError(f"cannot write {os.fsdecode(path)!r}: {e.strerror or e}; choose a folder "
                          "you can write to, or fix its permissions") from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            hint = "give a file name, not a folder" if isinstance(e, IsADirectoryError) else \
                "free some space or choose another path"
            raise OutputError(f"cannot write {os.fsdecode(path)!r}: {e.strerror or e}; {hint}") from None
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it, under a lock)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text; names that are not UTF-8 (held as surrogates,
    ``surrogateescape``) are written back as their own bytes."""
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def slug(text: str) -> str:
    """A file-name-safe form of a dataset or model name (at most 80 characters, never empty)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "x"


def read_user_file(path: str | os.PathLike, what: str):
    """A user's text file, parsed as JSON when its name ends in ``.json``: ``(text, data)`` with
    ``data`` None for other files. Unreadable files and broken JSON raise one
    :class:`~coderclip.errors.ConfigError` line naming ``what`` (e.g. "templates file 'x'")."""
    from .errors import ConfigError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {what}: {e}") from None
    if path.suffix.lower() != ".json":
        return text, None
    try:
        return text, json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{what} is not valid JSON: {e}") from None
