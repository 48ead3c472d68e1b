"""Parquet predictions: one file written row group by row group, or a folder of one Parquet file
per input shard with a manifest of finished shards, so that a killed job restarts where it
stopped. Every file appears under its final name only when complete (written to a temporary name
in the same folder, then renamed). Text formats (table, csv, jsonl, json) are
:mod:`coderclip.rows`'s.

Columns: ``key``, ``label`` (the top class), ``score`` (its probability), ``top_labels`` and
``top_scores`` (the top k, best first) and, on request, ``coder_vector``.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import uuid
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from .blocks import data_rows

MANIFEST = "_manifest.jsonl"
JOB_FILE = "_job.json"
SUMMARY_FILE = "_summary.json"


def prediction_table(block: dict, class_names: Sequence[str], with_vector: bool = False):
    """The rows of a classified block that have predictions, as a pyarrow Table."""
    import pyarrow as pa

    ok = data_rows(block)
    index = block["top_index"][ok]
    names = np.asarray(class_names, dtype=object)
    k = index.shape[1]
    scores = np.ascontiguousarray(block["top_scores"][ok], dtype=np.float32)
    offsets = pa.array(np.arange(0, (len(ok) + 1) * k, k, dtype=np.int32))
    cols = {
        "key": pa.array([str(s) for s in block["key"][ok]], pa.string()),
        "label": pa.array(names[index[:, 0]].tolist() if len(ok) else [], pa.string()),
        "score": pa.array(scores[:, 0] if len(ok) else np.zeros(0, np.float32)),
        "top_labels": pa.ListArray.from_arrays(offsets, pa.array(names[index.reshape(-1)].tolist(),
                                                                 pa.string())),
        "top_scores": pa.ListArray.from_arrays(offsets, pa.array(scores.reshape(-1))),
    }
    if with_vector:
        v = np.ascontiguousarray(block["coder_vector"][ok], dtype=np.float32)
        cols["coder_vector"] = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
    return pa.table(cols)


# ---------------------------------------------------------------------------------- file writers
class _AtomicFile:
    """A binary file under a temporary name that :meth:`commit` renames into place."""

    def __init__(self, url: str):
        import fsspec

        self.fs, self.path = fsspec.core.url_to_fs(url)
        parent = posixpath.dirname(self.path) if "://" in url else os.path.dirname(self.path)
        if parent:
            self.fs.makedirs(parent, exist_ok=True)
        base = posixpath.basename(self.path)
        self.tmp = self.path[: len(self.path) - len(base)] + f".{base}.{uuid.uuid4().hex[:8]}.tmp"
        self.f = self.fs.open(self.tmp, "wb")

    def commit(self) -> None:
        self.f.close()
        self.fs.mv(self.tmp, self.path)

    def abort(self) -> None:
        self.f.close()
        try:
            self.fs.rm(self.tmp)
        except FileNotFoundError:
            pass


class ParquetRows:
    """Appends prediction tables to one Parquet file (a row group per table); :meth:`close` puts
    it in place, :meth:`abort` removes it. Memory stays that of one table."""

    def __init__(self, url: str):
        self.url, self.rows = url, 0
        self._file = _AtomicFile(url)
        self._writer = None

    def write(self, table) -> None:
        import pyarrow.parquet as pq

        if self._writer is None:
            self._writer = pq.ParquetWriter(self._file.f, table.schema)
        if table.num_rows:
            self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self, schema=None) -> None:
        if self._writer is None and schema is not None:
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(self._file.f, schema)   # an empty file still has columns
        if self._writer is not None:
            self._writer.close()
        self._file.commit()

    def abort(self) -> None:
        if self._writer is not None:
            try:
                self._writer.close()
            except Exception:
                pass
        self._file.abort()


# ---------------------------------------------------------------------------------- shard folders
def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class ShardFolder:
    """A folder of ``<shard>.parquet`` files, one per finished input shard, and a manifest.

    ``_job.json`` records what produced the folder (model, knowledge, settings); a restart with
    different settings is refused rather than mixing results. ``_manifest.jsonl`` gets one line
    per finished shard, appended after the shard's file is in place.
    """

    def __init__(self, url: str, job: dict):
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self.path = fsspec.core.url_to_fs(self.url)
        self.fs.makedirs(self.path, exist_ok=True)
        job_path = self._p(JOB_FILE)
        if self.fs.exists(job_path):
            with self.fs.open(job_path, "r") as f:
                old = json.load(f)
            diff = sorted(k for k in set(old) | set(job) if old.get(k) != job.get(k))
            if diff:
                raise ConfigError(f"output folder {url!r} holds results of a different job (differs in "
                                  f"{', '.join(diff)}); choose another output folder or delete it")
        else:
            with self.fs.open(job_path, "w") as f:
                json.dump(job, f, indent=2)

    def _p(self, name: str) -> str:
        return posixpath.join(self.path, name) if "://" in self.url else os.path.join(self.path, name)

    @staticmethod
    def file_name(shard: str) -> str:
        return f"{_safe(shard)}.parquet"

    def shard_url(self, shard: str) -> str:
        join = posixpath.join if "://" in self.url else os.path.join
        return join(self.url, self.file_name(shard))

    def finished(self) -> dict[str, dict]:
        """Manifest entries whose files exist (a torn last line from a kill is ignored)."""
        path = self._p(MANIFEST)
        if not self.fs.exists(path):
            return {}
        out = {}
        with self.fs.open(path, "r") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if self.fs.exists(self._p(entry["file"])):
                    out[entry["shard"]] = entry
        return out

    def open(self, shard: str) -> ParquetRows:
        return ParquetRows(self.shard_url(shard))

    def record(self, entry: dict) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        if "://" in self.url:   # object stores cannot append: rewrite the manifest
            path = self._p(MANIFEST)
            old = self.fs.cat_file(path).decode() if self.fs.exists(path) else ""
            self.fs.pipe_file(path, (old + line).encode())
            return
        with open(self._p(MANIFEST), "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def write_summary(self, summary: dict) -> None:
        with self.fs.open(self._p(SUMMARY_FILE), "w") as f:
            json.dump(summary, f, indent=2)
