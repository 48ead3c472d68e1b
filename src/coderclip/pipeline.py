"""The one streaming pipeline: batches of images -> embeddings -> stage-1 scores -> rerank ->
top-k rows, written batch by batch.

The batch functions (:func:`stage1_scores`, :func:`rerank`, :func:`predict_batch`,
:func:`top_k_batch`) are pure: tensors and fitted tables in, tensors or arrays out, no I/O, no
global state, safe to import anywhere (the classifier, the CLI, evaluation, few-shot, a Ray
actor, the HTTP service). Their memory is ``O(n · C)`` for a batch of ``n`` images and never
depends on how many images the whole run has. :func:`classify_stream` drives them over a stream
of embedded batches and hands each batch's rows to a writer (:mod:`coderclip.rows`), so a run
keeps every finished batch on disk.

Shapes: ``x`` ``[n, D]`` unit image embeddings (float32, any device); ``C`` classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .defaults import DEFAULT_TAU, DEFAULT_TOP_K
from .errors import ConfigError
from .scoring import (CoderTables, RerankResult, clip_scores, heuristic_scores, probabilities,
                      rerank_top_k, top_k_probabilities)

#: The methods a batch can be scored with.
METHODS = ("coder-rerank", "coder", "clip", "clip-ensemble")
#: Rows read at once when embeddings (not images) are given.
SCORE_BATCH = 4096
#: Largest score matrix the row-wise batch functions build at once (numbers): 2**26 float32 is
#: 256 MiB, about 980 images at 21k classes with their synonym columns.
SCORE_ELEMS = 1 << 26


def _row_chunks(x: torch.Tensor, tables: CoderTables) -> Iterator[torch.Tensor]:
    """``x`` in row blocks whose ``[rows, C + M']`` score matrix stays under :data:`SCORE_ELEMS`."""
    rows = max(16, SCORE_ELEMS // max(1, tables.score_emb.shape[0]))
    for start in range(0, x.shape[0], rows):
        yield x[start:start + rows]


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def stage1_scores(x: torch.Tensor, tables: CoderTables, method: str = "coder-rerank",
                  logit_scale: float = 100.0, logit_bias: float = 0.0) -> torch.Tensor:
    """Stage-1 logits ``[n, C]`` float32 of ``x`` ``[n, D]``.

    ``coder`` / ``coder-rerank``: the heuristic classifier (the paper's ×100 scale); ``clip``:
    the name prompt; ``clip-ensemble``: the template ensemble, both ``logit_scale · cos +
    logit_bias`` (pass the model's own, ``encoder.logit_scale`` …; the defaults are CLIP's usual
    100). ``x`` is moved to the tables' device.
    """
    _check_method(method)
    x = x.to(tables.group_sum.device)
    if method in ("clip", "clip-ensemble"):
        return clip_scores(x, tables, ensemble=method == "clip-ensemble", logit_scale=logit_scale,
                           logit_bias=logit_bias)
    return heuristic_scores(x, tables)


def rerank(x: torch.Tensor, scores: torch.Tensor, tables: CoderTables, method: str = "coder-rerank",
           rerank_k: int = DEFAULT_TOP_K, tau: float = DEFAULT_TAU) -> RerankResult | None:
    """The one-vs-one rerank of the top ``rerank_k`` classes for ``coder-rerank``, else ``None``."""
    if method != "coder-rerank":
        return None
    return rerank_top_k(x.to(tables.group_sum.device), scores, tables, top_k=rerank_k, tau=tau)


def predict_batch(x: torch.Tensor, tables: CoderTables, method: str = "coder-rerank",
                  rerank_k: int = DEFAULT_TOP_K, tau: float = DEFAULT_TAU, **scale) -> np.ndarray:
    """Predicted class indices ``[n]`` (int64) of one batch, scored in row blocks of bounded size
    (``scale``: as :func:`top_k_batch`; the prediction does not depend on it)."""
    out = []
    for xc in _row_chunks(x, tables):
        s = stage1_scores(xc, tables, method)
        rr = rerank(xc, s, tables, method, rerank_k, tau)
        out.append((rr.prediction if rr is not None else s.argmax(dim=1)).cpu().numpy())
    return np.concatenate(out) if out else np.empty(0, np.int64)


def top_k_batch(x: torch.Tensor, tables: CoderTables, k: int = 5, method: str = "coder-rerank",
                rerank_k: int = DEFAULT_TOP_K, tau: float = DEFAULT_TAU, logit_scale: float = 100.0,
                logit_bias: float = 0.0, probability: str = "softmax"
                ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k_rows` without the rerank flags."""
    return top_k_rows(x, tables, k, method, rerank_k, tau, logit_scale, logit_bias, probability)[:2]


def top_k_rows(x: torch.Tensor, tables: CoderTables, k: int = 5, method: str = "coder-rerank",
               rerank_k: int = DEFAULT_TOP_K, tau: float = DEFAULT_TAU, logit_scale: float = 100.0,
               logit_bias: float = 0.0, probability: str = "softmax"
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top ``k`` classes ``[n, k]`` (int64, best first) and their probabilities ``[n, k]``
    (float32, non-increasing along each row) for one batch.

    CLIP methods: the model's ``logit_scale``, ``logit_bias`` and ``probability`` (softmax, or
    SigLIP's sigmoid); CODER: softmax of its ×100 score. With the rerank, its winner is moved to
    the front and the stage-1 probabilities keep their places (rank 1 shows the largest). The
    third array ``[n]`` (bool) says where the rerank changed the answer.
    """
    parts = []
    for xc in _row_chunks(x, tables):   # the score matrix stays under SCORE_ELEMS numbers
        s = stage1_scores(xc, tables, method, logit_scale, logit_bias)
        rr = rerank(xc, s, tables, method, rerank_k, tau)
        idx, prob = top_k_probabilities(s, k, _kind(method, probability), rr)
        changed = (rr.prediction != rr.candidates[:, 0]) if rr is not None else \
            torch.zeros(len(idx), dtype=torch.bool)
        parts.append((idx.cpu().numpy(), prob.float().cpu().numpy(), changed.cpu().numpy()))
    if not parts:
        k = min(int(k), tables.n_classes)
        return np.empty((0, k), np.int64), np.empty((0, k), np.float32), np.empty(0, bool)
    return tuple(np.concatenate(a) for a in zip(*parts))


def proba_batch(x: torch.Tensor, tables: CoderTables, method: str = "coder-rerank",
                rerank_k: int = DEFAULT_TOP_K, tau: float = DEFAULT_TAU, logit_scale: float = 100.0,
                logit_bias: float = 0.0, probability: str = "softmax") -> np.ndarray:
    """Class probabilities ``[n, C]`` (float32) for one batch, as :func:`top_k_batch` gives them:
    with the rerank, the candidates' probabilities follow the reranked order."""
    parts = []
    for xc in _row_chunks(x, tables):
        s = stage1_scores(xc, tables, method, logit_scale, logit_bias)
        p = probabilities(s, _kind(method, probability))
        rr = rerank(xc, s, tables, method, rerank_k, tau)
        if rr is not None:
            rr.reorder_probabilities(p)
        parts.append(p.cpu().numpy())
    return np.concatenate(parts) if parts else np.empty((0, tables.n_classes), np.float32)


def _kind(method: str, probability: str) -> str:
    """CODER's probabilities are always a softmax of its score; CLIP's follow the model."""
    return probability if method in ("clip", "clip-ensemble") else "softmax"


def row_batches(x, batch_size: int = SCORE_BATCH) -> Iterator[torch.Tensor]:
    """Consecutive row blocks ``[≤ batch_size, D]`` of an embedding matrix: a tensor (views, no
    copy), a numpy array (memory-mapped ones are read block by block), or anything with ``len``
    and row slicing (e.g. :class:`coderclip.features.FeatureRows`)."""
    for start in range(0, len(x), batch_size):
        block = x[start:start + batch_size]
        if isinstance(block, np.ndarray):   # a copy of this block (memory maps are read-only)
            block = torch.from_numpy(np.array(block, dtype=np.float32))
        yield torch.as_tensor(block, dtype=torch.float32)


# ---------------------------------------------------------------------------------- driving
@dataclasses.dataclass
class EmbeddedBatch:
    """One batch of a stream: ``ids`` ``[n]`` (file paths or row ids), unit ``embeddings``
    ``[n, D]``, and the ``(id, reason)`` of inputs of this batch that could not be read."""

    ids: list[str]
    embeddings: torch.Tensor
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class StreamSummary:
    """What :func:`classify_stream` did: rows written, inputs skipped as done, failures."""

    written: int = 0
    skipped_done: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def embedding_batches(x, ids: Sequence[str] | None = None,
                      batch_size: int | None = None, skip: Callable[[str], bool] | None = None
                      ) -> Iterator[EmbeddedBatch]:
    """Precomputed embeddings ``[N, D]`` (see :func:`row_batches` for what ``x`` may be) as a
    stream of normalised batches of ``batch_size``
    (default :data:`SCORE_BATCH`) rows; ids default to row numbers; rows whose id ``skip``
    accepts are left out."""
    batch_size = batch_size or SCORE_BATCH
    n = len(x)
    ids = [str(i) for i in range(n)] if ids is None else list(ids)
    if len(ids) != n:
        raise ConfigError(f"{len(ids)} ids for {n} embeddings")
    for start in range(0, n, batch_size):
        bid = ids[start:start + batch_size]
        xb = next(row_batches(x[start:start + batch_size], batch_size))
        if skip is not None:
            keep = [i for i, k in enumerate(bid) if not skip(k)]
            if len(keep) < len(bid):
                bid, xb = [bid[i] for i in keep], xb[keep]
        xb = xb / xb.norm(dim=1, keepdim=True).clamp_min(1e-12)
        yield EmbeddedBatch(bid, xb)


def image_batches(encoder, paths: Sequence[str], batch_size: int = 64, num_workers: int | None = None,
                  show_progress_bar: bool = False, skip: Callable[[str], bool] | None = None
                  ) -> Iterator[EmbeddedBatch]:
    """Image files decoded in background workers and embedded batch by batch; embeddings are
    moved to the CPU. Files whose path ``skip`` accepts are not read (a resumed run)."""
    from .images import iter_encoded_batches

    todo = [str(p) for p in paths if skip is None or not skip(str(p))]
    for idx, emb, failures in iter_encoded_batches(encoder, todo, batch_size=batch_size,
                                                   num_workers=num_workers,
                                                   show_progress_bar=show_progress_bar):
        yield EmbeddedBatch([todo[i] for i in idx], emb.cpu(), failures)


def classify_stream(batches: Iterable[EmbeddedBatch], tables: CoderTables, write: Callable, *,
                    class_names: Sequence[str], k: int = 5, method: str = "coder-rerank",
                    rerank_k: int = DEFAULT_TOP_K, tau: float = DEFAULT_TAU, **scale) -> StreamSummary:
    """Score every batch with :func:`top_k_rows` and call ``write(ids, classes, probabilities,
    reranked)`` (``[n]`` ids, ``[n, k]`` class names, ``[n, k]`` probabilities, ``[n]`` whether
    the rerank changed the answer) once per batch. ``scale``:
    the model's ``logit_scale``, ``logit_bias`` and ``probability`` (see :func:`top_k_batch`).

    Memory holds one batch at a time; whatever ``write`` has stored survives an interruption.
    """
    names = np.asarray(class_names, dtype=object)
    out = StreamSummary()
    for b in batches:
        out.failures.extend(b.failures)
        if not b.ids:
            continue
        with torch.inference_mode():
            idx, prob, changed = top_k_rows(b.embeddings, tables, k=k, method=method,
                                            rerank_k=rerank_k, tau=tau, **scale)
        write(b.ids, names[idx], prob, changed)
        out.written += len(b.ids)
    return out
