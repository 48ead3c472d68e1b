"""Choosing τ and K on labelled validation images (never on the images being evaluated)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import DatasetError
from .predict import predict_zero_shot

#: Values of ``tau_from`` / ``k_from``: ``"auto"`` (validation images where they exist, else the
#: fixed value), ``"val"`` (validation images, required), ``None`` or ``"fixed"`` (the fixed value).
SELECTION_SOURCES = ("auto", "val", "fixed", None)


def has_val_split(load: Callable):
    """``load()`` (a dataset's validation split), or ``None`` when there is none or it is empty."""
    try:
        val = load()
    except DatasetError:
        return None
    return val if len(val) else None


def select_on_val(x, bank, labels_of, *, tau: float, top_k: int, taus: Sequence[float],
                  ks: Sequence[int], tune_tau: bool, tune_k: bool) -> dict:
    """Choose τ and/or K by CODER + rerank top-1 on held-out images ``x`` ``[N, D]``.

    ``labels_of(kept)`` returns the held-out labels; it is called only after every prediction of
    the grid is computed. Ties go to the smaller τ (fewer samples reranked), then the smaller K.
    """
    tau_grid = sorted(set(float(t) for t in taus)) if tune_tau else [float(tau)]
    k_grid = sorted(set(int(k) for k in ks)) if tune_k else [int(top_k)]
    preds = {k: predict_zero_shot(x, bank, tau=tau_grid[0], top_k=k, taus=tau_grid, ks=(),
                                  ablation=False) for k in k_grid}
    labels = labels_of()
    grid = []
    for k in k_grid:
        for t in tau_grid:
            acc = float((preds[k].tau_sweep[t] == labels).mean() * 100.0)
            grid.append({"tau": t, "top_k": k, "top1": acc})
    best = max(grid, key=lambda g: (g["top1"], -g["tau"], -g["top_k"]))
    return {"images": int(len(labels)), "grid": grid, "tau": best["tau"], "top_k": best["top_k"],
            "top1": best["top1"]}
