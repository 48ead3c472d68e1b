"""The run journal: finished answers, one JSON line each, appended as they arrive.

The journal lives next to the output (``knowledge.json`` -> ``knowledge.json.journal.jsonl``). Each
line is written with a single ``write`` and flushed to disk before the next request's result is
accepted, so a crash loses at most the line being written; a torn last line is detected and cut off
on the next open. Records are keyed by a hash of everything that determines the answer (question,
model, settings), so a rerun serves finished work from the journal and only asks what is missing;
a later record with the same key replaces an earlier one (``--regenerate``). Plain JSON, never
pickle. Only one process may use a journal at a time (an advisory lock enforces it on POSIX).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ConfigError

FORMAT = "coderclip-atg-journal"
VERSION = 1


def journal_path_for(out: str | os.PathLike) -> Path:
    """Default journal location for an output file."""
    out = Path(out)
    return out.with_name(out.name + ".journal.jsonl")


class Journal:
    """Append-only JSONL store of finished tasks, keyed by task key (last record wins)."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        #: ``None`` keeps records in memory only (nothing to resume from).
        self.path = Path(path) if path is not None else None
        self.records: dict[str, dict[str, Any]] = {}
        self.created: str | None = None
        self._fh: Any = None

    def open(self) -> Journal:
        """Load existing records (repairing a torn last line) and lock the file for appending."""
        if self.path is None:
            self.created = self.created or _now()
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")
        try:
            _lock(fh, self.path)
        except BaseException:
            fh.close()
            raise
        self._fh = fh
        fh.seek(0)
        data = fh.read()
        good_end = data.rfind(b"\n") + 1
        if good_end < len(data):  # a line cut short by a crash: drop it
            fh.truncate(good_end)
            data = data[:good_end]
        self.created, self.records = _parse(data, self.path)
        if self.created is None:
            self.created = _now()
            self._write({"format": FORMAT, "version": VERSION, "created": self.created})
        return self

    def __enter__(self) -> Journal:
        return self.open() if self._fh is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def get(self, key: str) -> dict[str, Any] | None:
        return self.records.get(key)

    def append(self, record: dict[str, Any]) -> None:
        """Persist one finished task (must carry ``key``) before returning."""
        if "key" not in record:
            raise ValueError("journal records need a 'key'")
        self._write(record)
        self.records[record["key"]] = record

    def _write(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        if self._fh is None:
            raise RuntimeError("journal is not open")
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        self._fh.write(line.encode("utf-8"))
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def read_journal(path: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Records of a journal without locking or repairing it (for dry runs); empty if absent."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"cannot read journal {str(path)!r}: {e.strerror or e}") from None
    return _parse(data[: data.rfind(b"\n") + 1], Path(path))[1]


def _parse(data: bytes, path: Path) -> tuple[str | None, dict[str, dict[str, Any]]]:
    created = None
    records: dict[str, dict[str, Any]] = {}
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise ConfigError(f"journal {str(path)!r} line {n} is not JSON; it was not written by "
                              "coderclip, or was edited. Move it away to start over") from None
        if not isinstance(rec, dict):
            raise ConfigError(f"journal {str(path)!r} line {n} is not a JSON object")
        if rec.get("format") == FORMAT:
            if rec.get("version") != VERSION:
                raise ConfigError(f"journal {str(path)!r} has version {rec.get('version')!r}; this "
                                  f"coderclip writes version {VERSION}. Move it away to start over")
            created = created or rec.get("created")
        elif "key" in rec:
            records[rec["key"]] = rec
    return created, records


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _lock(fh: Any, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; concurrent runs are the user's business
        return
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise ConfigError(f"journal {str(path)!r} is in use by another coderclip generate run; wait "
                          "for it to finish or write to another --out") from None
