"""Accuracy statistics from final predictions and labels (the only module here that takes labels)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .predict import ABLATION, METHOD_LABELS, ZeroShotPredictions


def _accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float((pred == labels).mean() * 100.0) if len(labels) else float("nan")


def mean_per_class_recall(pred: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Mean over the classes present in ``labels`` of the share of their images predicted right
    (CLIP_benchmark's ``mean_per_class_recall``, in %), with two ``bincount`` s: ``O(N + C)``."""
    labels = np.asarray(labels)
    total = np.bincount(labels, minlength=n_classes)
    right = np.bincount(labels[np.asarray(pred) == labels], minlength=n_classes)
    present = total > 0
    return float((right[present] / total[present]).mean() * 100.0) if present.any() else float("nan")


def score_zero_shot(preds: ZeroShotPredictions, labels: np.ndarray, class_names: Sequence[str]
                    ) -> dict:
    """Accuracies (top-1, top-5, per class), the ablation ladder, the rerank report and the τ/K
    sweeps, from final predictions and the labels."""
    labels = np.asarray(labels)
    methods = {}
    for m, label in METHOD_LABELS.items():
        if m not in preds.ranking:
            continue
        r = preds.ranking[m]
        methods[m] = {"label": label, "top1": _accuracy(r[:, 0], labels),
                      "top5": float((r[:, :5] == labels[:, None]).any(axis=1).mean() * 100.0),
                      "mean_per_class_recall": mean_per_class_recall(r[:, 0], labels,
                                                                      len(class_names))}
    ladder = {name: _accuracy(preds.ranking[f"ablation:{name}"][:, 0], labels)
              for name in ABLATION if f"ablation:{name}" in preds.ranking}
    if ladder:
        ladder["+rerank"] = methods["coder-rerank"]["top1"]
    final = preds.prediction("coder-rerank")
    changed = preds.reranked & (final != preds.stage1)
    rerank = {
        "tau": preds.tau, "top_k": preds.top_k,
        "reranked": int(preds.reranked.sum()), "changed": int(changed.sum()),
        "wrong_to_right": int((changed & (preds.stage1 != labels) & (final == labels)).sum()),
        "right_to_wrong": int((changed & (preds.stage1 == labels) & (final != labels)).sum()),
        "wrong_to_wrong": int((changed & (preds.stage1 != labels) & (final != labels)).sum()),
        "tau_sweep": [{"tau": t, "top1": _accuracy(p, labels)} for t, p in preds.tau_sweep.items()],
        "k_sweep": [{"top_k": k, "top1": _accuracy(p, labels)} for k, p in preds.k_sweep.items()],
    }
    per_class = []
    for c, name in enumerate(class_names):
        m = labels == c
        per_class.append({"class": name, "images": int(m.sum()),
                          **{meth: _accuracy(preds.ranking[meth][m, 0], labels[m])
                             for meth in methods}})
    return {"n_images": int(len(labels)), "methods": methods, "ablation": ladder,
            "rerank": rerank, "per_class": per_class,
            "confused_pairs": confused_pairs(preds.prediction("coder-rerank"), labels, class_names)}


def confused_pairs(pred: np.ndarray, labels: np.ndarray, class_names: Sequence[str], n: int = 10
                   ) -> list[dict]:
    """The ``n`` most frequent (true, predicted) confusions, most frequent first (ties: the
    smaller true, then predicted class index).

    Counts only the pairs that occur (``np.unique`` of the misclassified images' pair keys):
    ``O(W log W)`` for W misclassified images, never a ``C × C`` table (21k classes would make
    it 441M cells).
    """
    wrong = np.asarray(pred) != np.asarray(labels)
    if not wrong.any():
        return []
    C = len(class_names)
    keys, counts = np.unique(labels[wrong].astype(np.int64) * C + pred[wrong], return_counts=True)
    top = np.lexsort((keys, -counts))[:n]
    return [{"true": class_names[int(keys[i]) // C], "predicted": class_names[int(keys[i]) % C],
             "count": int(counts[i])} for i in top]
