"""Cheap, cached content fingerprints of weight files, used in encoder identities."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from .._io import atomic_write_text, file_sha256

log = logging.getLogger(__name__)


def weights_fingerprint(path: str | os.PathLike) -> str:
    """SHA-256 (first 16 hex digits) of a weights file or of a folder's weight files.

    Hashing a multi-GB checkpoint takes seconds, so the digest is memoised on disk, keyed by the
    file's absolute path, size and modification time.
    """
    path = Path(path).resolve()
    files = [path] if path.is_file() else sorted(
        p for p in path.iterdir()
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".json"))
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        h.update(_file_digest(f).encode())
    return h.hexdigest()[:16]


def _file_digest(f: Path) -> str:
    from ..paths import cache_dir

    st = f.stat()
    key = hashlib.sha256(f"{f}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:32]
    memo = cache_dir() / "fingerprints" / f"{key}.json"
    try:
        found = json.loads(memo.read_text())["sha256"]
        if isinstance(found, str) and len(found) == 64 and all(c in "0123456789abcdef" for c in found):
            return found
        log.warning("ignoring the damaged fingerprint memo %s; hashing %s again", memo, f)
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        pass
    digest = file_sha256(f)
    try:
        atomic_write_text(memo, json.dumps({"path": str(f), "sha256": digest}))
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return digest
