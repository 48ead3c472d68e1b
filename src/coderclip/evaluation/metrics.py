"""Accuracy statistics from final predictions and labels (the only module here that takes labels)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .predict import ABLATION, METHOD_LABELS, NOISE_ROW, ZeroShotPredictions


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
def _top5(ranking: np.ndarray, labels: np.ndarray) -> float:
    if not len(labels):
        return float("nan")
    return float((ranking[:, :5] == labels[:, None]).any(axis=1).mean() * 100.0)


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
        methods[m] = {"label": label, "top1": _accuracy(r[:, 0], labels), "top5": _top5(r, labels),
                      "mean_per_class_recall": mean_per_class_recall(r[:, 0], labels,
                                                                      len(class_names))}
        if m == "waffle":  # one run per random-descriptor set: report mean ± std over them
            runs = [r] + [preds.ranking[k] for k in sorted(preds.ranking) if k.startswith("waffle@")]
            top1 = [_accuracy(x[:, 0], labels) for x in runs]
            top5 = [_top5(x, labels) for x in runs]
            recall = [mean_per_class_recall(x[:, 0], labels, len(class_names)) for x in runs]
            methods[m].update(top1=float(np.mean(top1)), top1_std=float(np.std(top1)),
                              top5=float(np.mean(top5)), top5_std=float(np.std(top5)),
                              mean_per_class_recall=float(np.mean(recall)),
                              top1_per_seed=top1)
    ladder = {name: _accuracy(preds.ranking[f"ablation:{name}"][:, 0], labels)
              for name in ABLATION if f"ablation:{name}" in preds.ranking}
    if ladder:
        ladder["+rerank"] = methods["coder-rerank"]["top1"]
        if f"ablation:{NOISE_ROW[0]}" in preds.ranking:
            ladder[NOISE_ROW[0]] = _accuracy(preds.ranking[f"ablation:{NOISE_ROW[0]}"][:, 0], labels)
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
        "sweeps": "post-hoc: accuracy of these images at other τ and K, never used to choose them",
    }
    return {"n_images": int(len(labels)), "methods": methods, "ablation": ladder,
            "rerank": rerank,
            "per_class": per_class_accuracy({m: preds.ranking[m][:, 0] for m in methods}, labels,
                                            class_names),
            "confused_pairs": confused_pairs(preds.prediction("coder-rerank"), labels, class_names)}


def per_class_accuracy(predictions: dict[str, np.ndarray], labels: np.ndarray,
                       class_names: Sequence[str]) -> list[dict]:
    """Per class: its number of images and each method's top-1 accuracy on them (NaN for a class
    without images). Two ``bincount`` passes per method: ``O(N + C)``, not one pass per class."""
    c = len(class_names)
    labels = np.asarray(labels, dtype=np.int64)
    images = np.bincount(labels, minlength=c)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = {m: np.bincount(labels[p == labels], minlength=c) * 100.0 / images
               for m, p in predictions.items()}
    return [{"class": name, "images": int(images[i]), **{m: float(a[i]) for m, a in acc.items()}}
            for i, name in enumerate(class_names)]


def confused_pairs(pred: np.ndarray, labels: np.ndarray, class_names: Sequence[str], n: int = 10
                   ) -> list[dict]:
    """The ``n`` most frequent (true, predicted) confusions; ties go to the smaller (true,
    predicted) index pair. Counts only the W wrong predictions: ``O(W log W)`` time and ``O(W)``
    memory (a ``[C, C]`` table would be 3.5 GB at 21k classes)."""
    pred, labels = np.asarray(pred, dtype=np.int64), np.asarray(labels, dtype=np.int64)
    wrong = pred != labels
    if not wrong.any():
        return []
    c = len(class_names)
    keys, counts = np.unique(labels[wrong] * c + pred[wrong], return_counts=True)
    top = np.argsort(-counts, kind="stable")[:n]
    return [{"true": class_names[int(keys[i]) // c], "predicted": class_names[int(keys[i]) % c],
             "count": int(counts[i])} for i in top]
