"""Per-image predictions of every method, streamed to CSV or Parquet.

One row per image: ``path``, ``true_label``, then for each method ``<method>.label<r>`` and
``<method>.score<r>`` for ranks r = 1..k (the scores are the probabilities of
:class:`~coderclip.classifier.CoderClassifier`: the model's own scale for the CLIP baselines,
CODER's softmax, the rerank's order). Rows are written batch by batch, so memory does not grow
with the number of images and nothing ``[N, C]`` is held. The true labels are added in a second
streaming pass after the predictions are final: until :meth:`PerImagePredictions.close`, the rows
on disk (in a ``.partial`` file next to the target) carry no label.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from ..bank.textbank import GENERAL_TYPES, TextBank
from ..baselines import BaselineTables
from ..errors import ConfigError
from ..scoring import (DEFAULT_TAU, DEFAULT_TOP_K, CoderTables, clip_scores, cosine_logits,
                       heuristic_scores, rerank_top_k, top_k_probabilities)
from .predict import METHOD_LABELS

#: File formats by suffix.
FORMATS = {".csv": "csv", ".parquet": "parquet"}


def predictions_format(path: str | os.PathLike) -> str:
    """``csv`` or ``parquet`` from the file name, or a clear error."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ConfigError(f"per-image predictions file {str(path)!r} must end in .csv or .parquet")
    return fmt


class MethodRanker:
    """Each method's top ``k`` classes and probabilities for one batch of unit image embeddings
    ``[n, D]``: ``O(n · C)`` time and memory per batch.

    ``methods``: any of :data:`~coderclip.evaluation.predict.METHOD_LABELS` (default: every one
    the bank has texts for). ``logit_scale``, ``logit_bias``, ``probability``: the model's own
    (``encoder.logit_scale`` …), used by the CLIP baselines and their peers (WaffleCLIP with its
    descriptor sets averaged, as :class:`~coderclip.classifier.CoderClassifier` does).
    """

    def __init__(self, bank: TextBank, k: int = 5, tau: float = DEFAULT_TAU,
                 rerank_k: int = DEFAULT_TOP_K, logit_scale: float = 100.0,
                 logit_bias: float = 0.0, probability: str = "softmax",
                 methods: Sequence[str] | None = None, device: str | torch.device = "cpu"):
        self.bank, self.k, self.tau, self.rerank_k = bank, int(k), float(tau), int(rerank_k)
        self.clip_kw = {"logit_scale": logit_scale, "logit_bias": logit_bias}
        self.probability = probability
        wanted = set(METHOD_LABELS if methods is None else methods)
        self.device = torch.device(device)
        full = CoderTables.from_bank(bank, device=device)
        coder = CoderTables.from_bank(bank, types=tuple(t for t in bank.types if t in GENERAL_TYPES),
                                      device=device)
        peers = BaselineTables.from_bank(bank, device=device)
        waffle = None if peers.waffle is None else peers.waffle.mean(0)
        protos = {"dclip": peers.dclip, "cupl": peers.cupl, "cupl-templates": peers.cupl_templates,
                  "waffle": waffle}
        available = {"clip": True, "clip-ensemble": full.ensemble_emb is not None,
                     "coder": True, "coder-rerank": True, **{m: p is not None for m, p in protos.items()}}
        self.methods = tuple(m for m in METHOD_LABELS if m in wanted and available.get(m))
        self._tables = (full, coder, protos)

    def __call__(self, x: torch.Tensor) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        full, coder, protos = self._tables
        x = x.to(self.device, torch.float32)
        out, stage1 = {}, None
        for m in self.methods:
            if m in ("coder", "coder-rerank"):
                stage1 = heuristic_scores(x, coder) if stage1 is None else stage1
                rr = rerank_top_k(x, stage1, full, top_k=self.rerank_k, tau=self.tau) \
                    if m == "coder-rerank" else None
                idx, p = top_k_probabilities(stage1, self.k, "softmax", rr)
            else:
                s = clip_scores(x, full, ensemble=m == "clip-ensemble", **self.clip_kw) \
                    if m.startswith("clip") else cosine_logits(x, protos[m], **self.clip_kw)
                idx, p = top_k_probabilities(s, self.k, self.probability)
            out[m] = (idx.cpu().numpy(), p.cpu().numpy())
        return out


class PerImagePredictions:
    """Writes per-image rows to ``path`` (``.csv`` or ``.parquet``) as batches arrive.

    ``paths``: the image paths of the rows, in the order the batches will give them (any
    iterable; consumed as rows arrive). :meth:`add` scores and writes one batch;
    :meth:`close` adds the true labels (after predictions are final) and moves the file into
    place.
    """

    def __init__(self, path: str | os.PathLike, ranker: MethodRanker, class_names: Sequence[str],
                 paths: Iterable[str]):
        self.path = Path(path)
        self.format = predictions_format(self.path)
        self.ranker, self.class_names = ranker, list(class_names)
        self._paths: Iterator[str] = iter(paths)
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.columns = ["path"] + [f"{m}.{what}{r}" for m in ranker.methods
                                   for r in range(1, ranker.k + 1) for what in ("label", "score")]
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = _CsvRows(self.partial, self.columns) if self.format == "csv" else \
            _ParquetRows(self.partial, self.columns)

    def add(self, x: torch.Tensor, paths: Sequence[str] | None = None) -> None:
        """Score the unit embeddings ``x`` ``[n, D]`` and write their rows."""
        n = int(x.shape[0])
        if paths is None:
            paths = [next(self._paths) for _ in range(n)]
        names = np.asarray(self.class_names, dtype=object)
        cols: dict[str, list] = {"path": [str(p) for p in paths]}
        for m, (idx, p) in self.ranker(x).items():
            for r in range(idx.shape[1]):
                cols[f"{m}.label{r + 1}"] = names[idx[:, r]].tolist()
                cols[f"{m}.score{r + 1}"] = p[:, r].astype(np.float64).round(6).tolist()
        for c in self.columns:   # fewer classes than k: empty ranks
            cols.setdefault(c, [None] * n)
        self._writer.write(cols)
        self.rows += n

    def close(self, labels: np.ndarray | None = None) -> Path:
        """Add the ``true_label`` column (label indices ``[N]`` in row order; ``None`` leaves it
        empty) and write the final file; returns its path."""
        self._writer.close()
        if labels is not None and len(labels) != self.rows:
            raise ConfigError(f"{len(labels)} labels for {self.rows} predicted images")
        names = None if labels is None else np.asarray(self.class_names, dtype=object)[np.asarray(labels)]
        (_add_label_csv if self.format == "csv" else _add_label_parquet)(self.partial, self.path, names)
        self.partial.unlink()
        return self.path


    def discard(self) -> None:
        """Close and remove the unfinished rows (nothing was predicted, or the run failed)."""
        self._writer.close()
        self.partial.unlink(missing_ok=True)


class _CsvRows:
    def __init__(self, path: Path, columns: list[str]):
        self.f = open(path, "w", newline="", encoding="utf-8")
        self.w = csv.writer(self.f)
        self.w.writerow(columns)
        self.columns = columns

    def write(self, cols: dict[str, list]) -> None:
        self.w.writerows(zip(*(cols[c] for c in self.columns)))
        self.f.flush()

    def close(self) -> None:
        self.f.close()


class _ParquetRows:
    """One row group per batch."""

    def __init__(self, path: Path, columns: list[str]):
        pa, pq = _arrow()
        self.pa, self.columns = pa, columns
        fields = [pa.field(c, pa.float32() if ".score" in c else pa.string()) for c in columns]
        self.schema = pa.schema(fields)
        self.w = pq.ParquetWriter(str(path), self.schema)

    def write(self, cols: dict[str, list]) -> None:
        self.w.write_table(self.pa.table({c: cols[c] for c in self.columns}, schema=self.schema))

    def close(self) -> None:
        self.w.close()


def _arrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("writing Parquet needs pyarrow: pip install 'coderclip[parquet]', or "
                          "write .csv instead") from None
    return pa, pq


def _add_label_csv(src: Path, dst: Path, names: np.ndarray | None) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    with open(src, newline="", encoding="utf-8") as f, \
            open(tmp, "w", newline="", encoding="utf-8") as out:
        r, w = csv.reader(f), csv.writer(out)
        header = next(r)
        w.writerow([header[0], "true_label", *header[1:]])
        for i, row in enumerate(r):
            w.writerow([row[0], "" if names is None else names[i], *row[1:]])
    os.replace(tmp, dst)


def _add_label_parquet(src: Path, dst: Path, names: np.ndarray | None) -> None:
    pa, pq = _arrow()
    reader = pq.ParquetFile(str(src))
    schema = reader.schema_arrow.insert(1, pa.field("true_label", pa.string()))
    tmp = dst.with_name(dst.name + ".tmp")
    start = 0
    with pq.ParquetWriter(str(tmp), schema) as w:
        for g in range(reader.num_row_groups):
            t = reader.read_row_group(g)
            n = t.num_rows
            label = [None] * n if names is None else names[start:start + n].tolist()
            w.write_table(t.add_column(1, "true_label", pa.array(label, pa.string())))
            start += n
    os.replace(tmp, dst)
