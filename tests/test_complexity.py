"""The linear-time rewrites give exactly what the quadratic versions gave (the loops below are the
old ones, kept here as references)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coderclip.atg.pairs import nearest_pairs
from coderclip.evaluation.metrics import confused_pairs, per_class_accuracy
from coderclip.fewshot.sampling import class_orders


def _old_confused(pred, labels, names, n=10):
    wrong = pred != labels
    if not wrong.any():
        return []
    c = len(names)
    counts = np.bincount(labels[wrong] * c + pred[wrong], minlength=c * c)
    top = np.argsort(-counts, kind="stable")[:n]
    return [{"true": names[i // c], "predicted": names[i % c], "count": int(counts[i])}
            for i in top if counts[i] > 0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confused_pairs_and_per_class_match_the_quadratic_versions(seed):
    rng = np.random.default_rng(seed)
    c, n = 37, 2000
    names = [f"class {i}" for i in range(c)]
    labels = rng.integers(0, c - 3, n)              # the last classes have no image
    pred = np.where(rng.random(n) < 0.6, labels, rng.integers(0, 6, n))
    assert confused_pairs(pred, labels, names) == _old_confused(pred, labels, names)
    assert confused_pairs(labels, labels, names) == []
    rows = per_class_accuracy({"m": pred}, labels, names)
    for ci, row in enumerate(rows):
        m = labels == ci
        assert row["images"] == int(m.sum())
        want = float((pred[m] == labels[m]).mean() * 100.0) if m.any() else float("nan")
        assert row["m"] == pytest.approx(want, nan_ok=True)


def test_class_orders_match_the_per_class_scan():
    labels = np.random.default_rng(3).integers(0, 50, 5000)
    labels[labels == 7] = 8                          # a class with no item
    for seed in (1, 2):
        rng = np.random.default_rng([seed, 0])
        old = [rng.permutation(np.flatnonzero(labels == c)) for c in range(52)]
        new = class_orders(labels, 52, seed, 0)
        assert len(new) == 52 and all(np.array_equal(a, b) for a, b in zip(old, new))


def test_nearest_pairs_match_a_full_stable_sort():
    g = torch.Generator().manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(300, 8, generator=g), dim=1)
    emb[5] = emb[9] = emb[11]                         # exact ties
    for m in (1, 3, 7):
        sims = emb @ emb.T
        sims.fill_diagonal_(float("-inf"))
        order = torch.sort(sims, dim=1, descending=True, stable=True).indices[:, :m]
        want = sorted({(min(i, int(j)), max(i, int(j))) for i in range(300) for j in order[i].tolist()})
        assert nearest_pairs(emb, m, block=64) == want


def test_fewshot_search_in_blocks_equals_the_precomputed_search(monkeypatch):
    import coderclip.fewshot.adapters as adapters
    from coderclip.fewshot import CoderAdapter, TipAdapter

    g = torch.Generator().manual_seed(5)
    unit = lambda n, d=12: torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)  # noqa: E731
    w, axes = unit(9), unit(20)
    support, val = unit(9 * 4), unit(9 * 3)
    ys, yv = torch.arange(36) % 9, torch.arange(27) % 9
    for cls, extra in ((TipAdapter, ()), (CoderAdapter, (axes,))):
        whole = cls(w, *extra, key_dtype="float32").fit(support, ys, val, yv)
        monkeypatch.setattr(adapters, "VAL_ROWS_ELEMS", 0)            # force the on-demand rows
        blocks = cls(w, *extra, key_dtype="float32").fit(support, ys, val, yv)
        monkeypatch.undo()
        assert (blocks.alpha_, blocks.beta_) == (whole.alpha_, whole.beta_)
        assert blocks.search_.to_dict() == whole.search_.to_dict()
