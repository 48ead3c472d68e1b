"""Where predictions go: one file written batch by batch (Parquet row groups, CSV or JSON lines),
or a folder of one Parquet file per input shard with a manifest of finished shards, so that a
killed job restarts where it stopped. Every file appears under its final name only when complete
(written to a temporary name in the same folder, then renamed).

Columns: ``key``, ``label`` (the top class), ``score`` (its probability), ``top_labels`` and
``top_scores`` (the top k, best first) and, on request, ``coder_vector``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import re
import uuid
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from .blocks import data_rows

OUTPUT_FORMATS = ("parquet", "csv", "jsonl")
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


class _Stdout:
    """Standard output in place of a file (csv and jsonl rows as they come)."""

    def __init__(self):
        import sys

        self.f = self
        self._out = sys.stdout

    def write(self, data: bytes) -> None:
        self._out.write(data.decode("utf-8"))
        self._out.flush()

    def commit(self) -> None:
        pass

    abort = commit


class RowWriter:
    """Appends prediction tables to one file of ``fmt`` (parquet, csv, jsonl); :meth:`close`
    puts it in place, :meth:`abort` removes it. Memory stays that of one table."""

    def __init__(self, url: str, fmt: str = "parquet"):
        if fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"unknown output format {fmt!r}; expected one of {', '.join(OUTPUT_FORMATS)}")
        if url == "-" and fmt == "parquet":
            raise ConfigError("Parquet output needs a file: give -o FILE.parquet")
        self.url, self.fmt, self.rows = url, fmt, 0
        self._file = _Stdout() if url == "-" else _AtomicFile(url)
        self._parquet = None
        self._csv_header = False

    def write(self, table) -> None:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self._file.f, table.schema)
            if table.num_rows:
                self._parquet.write_table(table)
        elif table.num_rows:
            self._file.f.write(self._text(table).encode("utf-8"))
        self.rows += table.num_rows

    def _text(self, table) -> str:
        rows = table.to_pylist()
        if self.fmt == "jsonl":
            return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if not self._csv_header:
            w.writerow(table.column_names)
            self._csv_header = True
        for r in rows:   # list columns as JSON arrays: unambiguous whatever the class names hold
            w.writerow([json.dumps(v, ensure_ascii=False) if isinstance(v, list) else v for v in r.values()])
        return buf.getvalue()

    def close(self, schema=None) -> None:
        if self.fmt == "parquet" and self._parquet is None and schema is not None:
            import pyarrow.parquet as pq

            self._parquet = pq.ParquetWriter(self._file.f, schema)   # an empty file still has columns
        if self._parquet is not None:
            self._parquet.close()
        self._file.commit()

    def abort(self) -> None:
        if self._parquet is not None:
            try:
                self._parquet.close()
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

    def open(self, shard: str) -> RowWriter:
        return RowWriter(self.shard_url(shard), "parquet")

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
