"""Prediction rows on disk, written batch by batch so that an interrupted run keeps every finished
batch and a rerun resumes where it stopped.

Formats: ``csv`` (``image,rank,label,score``, one line per image and rank), ``jsonl`` (one
JSON object per image: ``{"image": ..., "reranked": ..., "predictions": [{"label": ...,
"score": ...}, ...]}``, the transformers pipeline's key names; :func:`read_prediction` also reads
the older ``class``/``probability``), ``json`` (one document, assembled at the end from a JSON-lines part
file, so memory stays flat), ``table`` (text for a terminal). Beside a file output lies
``<output>.run.json``: the settings that produced it and whether it is complete. A rerun with the
same settings skips the images already written (a half-written last line is cut off); a rerun
with other settings is refused, naming both, unless ``overwrite`` is set.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ._io import atomic_write_text
from .errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

FORMATS = ("table", "csv", "jsonl", "json")
#: The key names of one prediction; recorded in the run settings so that a file written with the
#: older names (``class``, ``probability``) is not resumed with the new ones.
ROW_KEYS = "label,score"


class RowWriter:
    """Appends each batch's rows to ``path`` (or standard output when ``path`` is ``None``).

    ``settings``: what produced the rows (model identity, knowledge digest, method, top); a
    resumed file must have been written with the same. Use as a context manager; :meth:`done`
    tells whether an image is already in the file.
    """

    def __init__(self, path: str | os.PathLike | None, fmt: str, settings: dict, *,
                 overwrite: bool = False, extra: dict | None = None) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self.fmt, self.settings, self.extra = fmt, settings, extra or {}
        self.path = Path(path) if path is not None else None
        self._done: set[str] = set()
        self.resumed = 0
        self._out: TextIO
        if self.path is None:
            self._out = sys.stdout
            if fmt == "csv":
                self._csv_header()
            return
        self.record = self.path.with_name(self.path.name + ".run.json")
        self.part = self.path.with_name(self.path.name + ".part.jsonl") if fmt == "json" else self.path
        previous = self._read_record() if fmt != "table" else None   # a table is not resumed
        if previous is not None and not overwrite:
            if previous.get("settings") != settings:
                raise ConfigError(
                    f"{self.path} was written with other settings ({_diff(previous.get('settings'), settings)}); "
                    "pass --overwrite to replace it, or choose another --output")
            if previous.get("complete"):
                self._done = None  # type: ignore[assignment]   # everything is done
        if previous is not None and not overwrite and self._done is not None and self.part.exists():
            self._done = self._scan()
            self.resumed = len(self._done)
            self._out = open(self.part, "a", encoding="utf-8", errors="surrogateescape", newline="")
        else:
            if self._done is not None:
                self._out = open(self.part, "w", encoding="utf-8", errors="surrogateescape", newline="")
                if fmt == "csv":
                    self._csv_header()
            self._write_record(False)

    # ------------------------------------------------------------------ state
    @property
    def complete(self) -> bool:
        """The file was finished by an earlier run with the same settings."""
        return self._done is None

    def done(self, image: str) -> bool:
        return self._done is None or image in self._done

    def _read_record(self) -> dict | None:
        try:
            return json.loads(self.record.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read {self.record} ({e}); delete it or pass --overwrite") from None

    def _write_record(self, complete: bool) -> None:
        atomic_write_text(self.record, json.dumps({"format": self.fmt, "settings": self.settings,
                                                   "complete": complete}, indent=1) + "\n")

    def _scan(self) -> set[str]:
        """Images already in the part file. A torn last line (a killed write) is cut off; in CSV,
        where an image spans several lines, the last image's lines are cut too (it may lack
        ranks) and that image is done again."""
        done: list[str] = []
        keep = 0            # bytes of the file that are kept
        with open(self.part, "rb") as f:
            pos = 0
            last_start = 0  # CSV: where the last image's lines begin
            for n, line in enumerate(f):
                end = pos + len(line)
                if not line.endswith(b"\n"):
                    break
                text = line.decode("utf-8", "surrogateescape").rstrip("\n")
                try:
                    image = (next(csv.reader([text]))[0] if self.fmt == "csv"
                             else json.loads(text)["image"])
                except (StopIteration, IndexError, csv.Error, ValueError, KeyError, TypeError):
                    break
                if self.fmt == "csv" and n == 0:
                    keep = last_start = end                     # the header
                elif self.fmt == "csv":
                    if not done or done[-1] != image:
                        done.append(image)
                        last_start = pos
                    keep = end
                else:
                    done.append(image)
                    keep = end
                pos = end
        if self.fmt == "csv" and done:
            done.pop()
            keep = last_start
        if keep < self.part.stat().st_size:
            with open(self.part, "r+b") as f:
                f.truncate(keep)
        return set(done)

    # ------------------------------------------------------------------ writing
    def _csv_header(self) -> None:
        self._out.write("image,rank,label,score\n")

    def write(self, ids: Sequence[str], classes: np.ndarray, probs: np.ndarray,
              reranked: Sequence[bool] | None = None, extras: Sequence[dict] | None = None) -> None:
        """One batch: ``ids`` ``[n]``, ``classes`` ``[n, k]`` names, ``probs`` ``[n, k]``;
        ``reranked`` ``[n]``: the rerank changed the answer (marked in tables and JSON rows);
        ``extras``: per image, more keys for its JSON row (an ``explanation`` list is also shown
        in a table; CSV leaves them out)."""
        extras = extras if extras is not None else [{}] * len(ids)
        buf = io.StringIO()
        if reranked is None:
            reranked = [False] * len(ids)
        if self.fmt == "csv":
            w = csv.writer(buf, lineterminator="\n")
            for image, cs, ps in zip(ids, classes, probs):
                for rank, (c, p) in enumerate(zip(cs, ps), 1):
                    w.writerow([image, rank, c, f"{p:.6f}"])
        elif self.fmt == "table":
            for image, cs, ps, chosen, extra in zip(ids, classes, probs, reranked, extras):
                buf.write(f"{image}\n")
                for rank, (c, p) in enumerate(zip(cs, ps), 1):
                    mark = "  (chosen by the rerank)" if chosen and rank == 1 else ""
                    buf.write(f"  {rank}. {c:<40} {p:7.2%}{mark}\n")
                if extra.get("explanation"):
                    buf.write("  because:\n")
                    for e in extra["explanation"]:
                        vs = f" (vs {e['versus']})" if "versus" in e else ""
                        buf.write(f"    {e['contribution']:+8.3f}  {e['type']:<9} {e['text']}{vs}\n")
        else:
            for image, cs, ps, chosen, extra in zip(ids, classes, probs, reranked, extras):
                row = {**prediction_row(image, cs, ps, chosen), **extra}
                buf.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._out.write(buf.getvalue())
        self._out.flush()
        if self.path is not None:
            os.fsync(self._out.fileno())

    def close(self, complete: bool = True) -> None:
        """Finish the file (for ``json``: assemble the document) and record it as complete."""
        if self.path is None or self._done is None:
            return
        self._out.close()
        if complete and self.fmt == "json":
            self._assemble()
        if complete:
            self._write_record(True)

    def _assemble(self) -> None:
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with open(self.part, encoding="utf-8", errors="surrogateescape") as src, \
                open(tmp, "w", encoding="utf-8", errors="surrogateescape") as out:
            out.write(json.dumps(self.extra, ensure_ascii=False)[:-1]
                      + (", " if self.extra else "") + '"results": [\n')
            first = True
            for line in src:
                out.write(("" if first else ",\n") + line.rstrip("\n"))
                first = False
            out.write("\n]}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        self.part.unlink()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.path is not None and self._done is not None:
            self.close(complete=exc_type is None)


def prediction_row(image: str, classes, probs, reranked: bool = False) -> dict:
    """One image's JSON row: its top classes with probabilities, best first; ``reranked``: the
    rerank changed the answer."""
    return {"image": image, "reranked": bool(reranked),
            "predictions": [{"label": str(c), "score": float(p)} for c, p in zip(classes, probs)]}


def read_prediction(item: dict) -> tuple[str, float]:
    """``(label, score)`` of one prediction of a JSON row, in the current or the older key names."""
    label = item["label"] if "label" in item else item["class"]
    score = item["score"] if "score" in item else item["probability"]
    return str(label), float(score)


def _diff(old: dict | None, new: dict) -> str:
    old = old or {}
    keys = [k for k in sorted({*old, *new}) if old.get(k) != new.get(k)]
    return "; ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in keys) or "unknown"
