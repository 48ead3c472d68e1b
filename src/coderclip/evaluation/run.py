"""Honest zero-shot evaluation of a labelled dataset: every method's predictions first, labels after,
and a report that records what produced it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from ..bank.textbank import TextBank
from ..encoders.base import Encoder
from ..errors import DatasetError
from ..knowledge import Knowledge
from ..scoring import DEFAULT_TAU, DEFAULT_TOP_K
from .guard import LabelGuard
from .metrics import score_zero_shot
from ..pipeline import row_batches
from .predict import DEFAULT_KS, DEFAULT_TAUS, NothingScored, ZeroShotPredictor, bank_types
from .provenance import provenance

REPORT_FORMAT = "coderclip-zero-shot-report"
REPORT_VERSION = 1


def predict_then_label(x: torch.Tensor | Iterable[torch.Tensor], bank: TextBank,
                       class_names: Sequence[str], labels_of: Callable[[], np.ndarray], *,
                       tau: float = DEFAULT_TAU, top_k: int = DEFAULT_TOP_K,
                       taus: Sequence[float] = DEFAULT_TAUS, ks: Sequence[int] = DEFAULT_KS,
                       device: str | torch.device | None = None, guard: LabelGuard | None = None,
                       methods: Sequence[str] | None = None) -> dict:
    """The accuracy sections of a report for unit image embeddings: one tensor ``[N, D]`` or a
    stream of batches ``[n, D]`` (consumed once, never held together).

    Every method's predictions are computed first; ``labels_of()`` (the ``[N]`` labels of the
    embedded rows, in order) is called once, after them, and ``guard`` (if given) is told the
    predictions are final just before. Shared by :func:`evaluate`, the benchmark suite and the
    testbed demo, so all three follow the same order.
    """
    pred = ZeroShotPredictor(bank, tau=tau, top_k=top_k, taus=taus, ks=ks, device=device,
                             methods=methods)
    for xb in (row_batches(x) if isinstance(x, torch.Tensor) else x):
        pred.add(xb)
    preds = pred.result()
    if guard is not None:
        guard.final()
    labels = np.asarray(labels_of())
    return score_zero_shot(preds, labels, class_names)


def evaluate(encoder: Encoder, knowledge: Knowledge, dataset, *, tau: float = DEFAULT_TAU,
             top_k: int = DEFAULT_TOP_K, taus: Sequence[float] = DEFAULT_TAUS,
             ks: Sequence[int] = DEFAULT_KS, batch_size: int = 64, num_workers: int | None = None,
             cache: bool = True, show_progress_bar: bool = False,
             knowledge_source: str | None = None, methods: Sequence[str] | None = None,
             encoded_batches: Callable | None = None, decode: str = "cpu") -> dict:
    """Evaluate every method on a labelled :class:`~coderclip.datasets.ImageDataset`.

    Order of work: align the knowledge to the dataset's classes (by name), build the text bank,
    embed and score the images batch by batch (embeddings are not kept), and only then read the
    labels. ``methods``: which methods to report (default
    :data:`~coderclip.defaults.DEFAULT_METHODS`; CODER + rerank, its sweeps and the ablation are
    always there); only their texts are encoded. ``encoded_batches`` replaces
    :func:`~coderclip.images.iter_encoded_batches` (same arguments, same batches), e.g. with the
    Ray engine's :func:`~coderclip.scale.ray_engine.ray_encoded_batches`. ``decode``: ``"cpu"``
    or ``"device"`` (JPEG decoding on the model's device; see
    :func:`~coderclip.images.iter_encoded_batches`), for the default image batches.
    """
    from ..images import iter_encoded_batches

    guard = LabelGuard(dataset)
    kn = knowledge.align(dataset.class_names)
    bank = TextBank.build(kn, encoder, types=bank_types(methods), cache=cache,
                          show_progress_bar=show_progress_bar)
    kept: list[int] = []
    failures: list[tuple[str, str]] = []

    def batches():
        encode = encoded_batches or functools.partial(iter_encoded_batches, decode=decode)
        for idx, emb, bad in encode(encoder, dataset.paths, batch_size=batch_size,
                                    num_workers=num_workers, show_progress_bar=show_progress_bar):
            failures.extend(bad)
            if idx:
                kept.extend(idx)
                yield emb

    def labels() -> np.ndarray:
        return dataset.labels()[np.asarray(kept, dtype=np.int64)]

    try:
        scores = predict_then_label(batches(), bank, kn.class_names, labels, tau=tau, top_k=top_k,
                                    taus=taus, ks=ks, guard=guard, methods=methods)
    except NothingScored:
        raise DatasetError(f"none of the {len(dataset)} images of {dataset.name} could be read") from None
    report = {"format": REPORT_FORMAT, "version": REPORT_VERSION,
              "dataset": dataset.describe(),
              "skipped_images": [{"path": p, "reason": r} for p, r in failures]}
    report.update(scores)
    report["provenance"] = provenance(encoder, kn, bank, knowledge_source,
                                      labels_read_after_predictions=guard.honest())
    return report
