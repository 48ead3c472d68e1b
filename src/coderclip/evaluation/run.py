"""Honest zero-shot evaluation of a labelled dataset: every method's predictions first, labels after,
and a report that records what produced it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..bank.textbank import TextBank, contrast_pairs
from ..encoders.base import Encoder
from ..errors import DatasetError
from ..knowledge import Knowledge
from ..scoring import DEFAULT_TAU, DEFAULT_TOP_K
from .metrics import score_zero_shot
from .predict import (DEFAULT_KS, DEFAULT_TAUS, bank_types, check_methods, predict_zero_shot,
                      reachable_pairs)
from .provenance import provenance

REPORT_FORMAT = "coderclip-zero-shot-report"
REPORT_VERSION = 1


def predict_then_label(x: torch.Tensor, bank: TextBank, class_names: Sequence[str],
                       labels_of: Callable[[], np.ndarray], *, tau: float = DEFAULT_TAU,
                       top_k: int = DEFAULT_TOP_K, taus: Sequence[float] = DEFAULT_TAUS,
                       ks: Sequence[int] = DEFAULT_KS, methods: Sequence[str] | None = None) -> dict:
    """The accuracy sections of a report for unit image embeddings ``x`` ``[N, D]``.

    Every method's predictions are computed first; ``labels_of()`` (the ``[N]`` labels of the rows
    of ``x``) is called once, after them. Shared by :func:`evaluate`, the benchmark suite and the
    testbed demo, so all three follow the same order.
    """
    preds = predict_zero_shot(x, bank, tau=tau, top_k=top_k, taus=taus, ks=ks,
                              methods=check_methods(methods))
    labels = np.asarray(labels_of())
    return score_zero_shot(preds, labels, class_names)


def evaluate(encoder: Encoder, knowledge: Knowledge, dataset, *, tau: float = DEFAULT_TAU,
             top_k: int = DEFAULT_TOP_K, taus: Sequence[float] = DEFAULT_TAUS,
             ks: Sequence[int] = DEFAULT_KS, batch_size: int = 64, num_workers: int | None = None,
             cache: bool = True, show_progress_bar: bool = False,
             knowledge_source: str | None = None, methods: Sequence[str] | None = None,
             decode: str = "cpu") -> dict:
    """Evaluate every method on a labelled :class:`~coderclip.datasets.ImageDataset`.

    Order of work: align the knowledge to the dataset's classes (by name), build the text bank,
    embed the images, add the contrast texts of the class pairs the rerank can reach for these
    images (the others are never read), compute all predictions, and only then read the labels.
    ``methods``: which methods to report (default
    :data:`~coderclip.evaluation.predict.DEFAULT_METHODS`; CODER + rerank, its sweeps and the
    ablation are always there); only their texts are encoded. ``decode``: ``"cpu"`` or
    ``"device"`` (JPEG decoding on the model's device, see :func:`~coderclip.images.encode_image_files`).
    """
    from ..images import encode_image_files

    kn = knowledge.align(dataset.class_names)
    types = bank_types(methods)
    bank = TextBank.build(kn, encoder, types=tuple(t for t in types if t != "contrast"), cache=cache,
                          show_progress_bar=show_progress_bar)
    enc = encode_image_files(encoder, dataset.paths, batch_size=batch_size, num_workers=num_workers,
                             show_progress_bar=show_progress_bar, decode=decode)
    if not enc.kept:
        raise DatasetError(f"none of the {len(dataset)} images of {dataset.name} could be read")
    if "contrast" in types:  # only the pairs the rerank can reach for these images
        reach = reachable_pairs(enc.embeddings, bank, contrast_pairs(kn), max(top_k, *ks))
        bank = bank.extended(TextBank.build(kn, encoder, types=("contrast",), cache=cache,
                                            show_progress_bar=show_progress_bar,
                                            contrast_pairs=reach))
    kept = np.asarray(enc.kept, dtype=np.int64)
    report = {"format": REPORT_FORMAT, "version": REPORT_VERSION,
              "dataset": dataset.describe(),
              "skipped_images": [{"path": p, "reason": r} for p, r in enc.failures]}
    report.update(predict_then_label(enc.embeddings, bank, kn.class_names,
                                     lambda: dataset.labels()[kept], tau=tau, top_k=top_k,
                                     taus=taus, ks=ks, methods=methods))
    report["provenance"] = provenance(encoder, kn, bank, knowledge_source)
    return report
