"""The α, β search: batched grid against a per-point reference, picking the best point on a
constructed validation set, tie-breaking, refinement and fixing one of the two."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coderclip.errors import ConfigError
from coderclip.fewshot.adapters import CoderAdapter, TipAdapter
from coderclip.fewshot.cache_model import CacheModel
from coderclip.fewshot.search import (SearchSpace, grid_correct, search_alpha_beta,
                                      select_best)


def cache_for(labels, n_classes, minmax=False):
    """A cache whose keys do not matter (the search works on given affinities)."""
    labels = torch.as_tensor(labels)
    return CacheModel.build(torch.eye(len(labels)), labels, n_classes, minmax=minmax)


def reference_accuracy(zs, aff, support_labels, y, alphas, betas):
    """One numpy evaluation per grid point, straight from the formula."""
    onehot = np.eye(zs.shape[1])[support_labels]
    out = np.zeros((len(alphas), len(betas)))
    for i, a in enumerate(alphas):
        for j, b in enumerate(betas):
            logits = zs + a * (np.exp(-b * (1 - aff)) @ onehot)
            out[i, j] = (logits.argmax(1) == y).mean() * 100
    return out


def test_search_picks_the_unique_best_point_on_a_constructed_validation_set():
    # Two classes, one support image each. Zero-shot prefers class 0 by 1 logit for both samples.
    # Sample 1 (class 1, affinities [0, 1]) is right iff α(1 − e^{−β}) > 1;
    # sample 2 (class 0, affinities [0.5, 1]) is right iff α(1 − e^{−β/2}) < 1.
    # On this grid only α = 2, β = 1 gets both right.
    zs = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    aff = torch.tensor([[0.0, 1.0], [0.5, 1.0]])
    y = torch.tensor([1, 0])
    alphas, betas = (0.0, 1.0, 2.0), (0.5, 1.0, 2.0, 4.0, 8.0)
    ref = reference_accuracy(zs.numpy(), aff.numpy(), [0, 1], y.numpy(), alphas, betas)
    assert (ref == 100).sum() == 1 and ref[2, 1] == 100
    res = search_alpha_beta(cache_for([0, 1], 2), zs, aff, y,
                            SearchSpace(alphas, betas, refine=0, extend=0))
    assert (res.alpha, res.beta) == (2.0, 1.0)
    assert res.val_accuracy == 100.0 and res.zero_shot_val_accuracy == 50.0
    assert res.refined is None and np.allclose(res.coarse.accuracy, ref)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batched_grid_equals_per_point_reference(seed):
    rng = np.random.default_rng(seed)
    n, c, shots = 40, 5, 3
    sl = np.repeat(np.arange(c), shots)
    zs = rng.normal(0, 2, (n, c)).astype(np.float32)
    aff = rng.random((n, c * shots)).astype(np.float32)
    y = rng.integers(0, c, n)
    alphas, betas = SearchSpace().alphas, SearchSpace().betas
    ref = reference_accuracy(zs.astype(np.float64), aff.astype(np.float64), sl, y, alphas, betas)
    got = grid_correct(cache_for(sl, c), torch.tensor(zs), torch.tensor(aff), torch.tensor(y),
                       alphas, betas, block_elems=5000).double() * 100 / n   # several query blocks
    assert np.abs(got.numpy() - ref).max() <= 100 / n + 1e-9   # at most one float-rounding flip
    assert (np.abs(got.numpy() - ref) > 1e-9).mean() < 0.02
    res = search_alpha_beta(cache_for(sl, c), torch.tensor(zs), torch.tensor(aff), torch.tensor(y),
                            SearchSpace(refine=0, extend=0))
    i, j = alphas.index(res.alpha), betas.index(res.beta)
    assert res.val_accuracy == got.max().item() == got[i, j].item()


def test_ties_go_to_the_middle_of_a_plateau_then_smaller_alpha():
    acc = torch.tensor([[50, 80, 80, 80], [50, 80, 80, 80], [50, 50, 80, 50.]])
    assert select_best(acc) == (0, 2)
    assert select_best(torch.full((3, 3), 10.0)) == (0, 0)      # all equal: smallest α, β
    assert select_best(torch.tensor([[70.0, 70.0]])) == (0, 0)   # equal neighbourhoods: smaller β


def test_the_grid_is_evaluated_in_one_batched_pass(monkeypatch):
    calls = []
    original = CacheModel.evidence

    def counting(self, affinity, beta):
        calls.append(torch.as_tensor(beta).numel())
        return original(self, affinity, beta)

    monkeypatch.setattr(CacheModel, "evidence", counting)
    rng = np.random.default_rng(3)
    zs, aff = torch.tensor(rng.normal(size=(30, 4)), dtype=torch.float32), torch.rand(30, 8)
    res = search_alpha_beta(cache_for(np.repeat(np.arange(4), 2), 4), zs, aff,
                            torch.tensor(rng.integers(0, 4, 30)), SearchSpace(refine=7, extend=0))
    space = SearchSpace()
    assert calls[0] == len(space.betas) and len(calls) == 2    # coarse grid, then refined grid
    assert calls[1] == len(res.refined.betas)


def test_refinement_contains_the_coarse_best_and_never_loses_accuracy():
    rng = np.random.default_rng(5)
    n, c = 60, 6
    sl = np.repeat(np.arange(c), 2)
    zs = torch.tensor(rng.normal(0, 1, (n, c)), dtype=torch.float32)
    aff = torch.rand(n, c * 2, generator=torch.Generator().manual_seed(5))
    y = torch.tensor(rng.integers(0, c, n))
    res = search_alpha_beta(cache_for(sl, c), zs, aff, y, SearchSpace(refine=9))
    coarse = torch.tensor(res.coarse.accuracy, dtype=torch.float64)
    ci, cj = select_best(coarse)
    best_a, best_b = res.coarse.alphas[ci], res.coarse.betas[cj]
    assert best_a in res.refined.alphas and best_b in res.refined.betas
    assert res.val_accuracy >= coarse.max().item()
    lo = res.coarse.alphas[max(ci - 1, 0)]
    hi = res.coarse.alphas[min(ci + 1, len(res.coarse.alphas) - 1)]
    assert min(res.refined.alphas) >= lo and max(res.refined.alphas) <= hi
    assert 5 <= len(res.refined.alphas) <= 10


def test_adapter_fit_searches_only_what_is_not_fixed():
    g = torch.Generator().manual_seed(0)
    c, d = 4, 8
    w = torch.nn.functional.normalize(torch.randn(c, d, generator=g), dim=1)
    sup = w.repeat_interleave(3, 0) + 0.3 * torch.randn(12, d, generator=g)
    ys = torch.arange(c).repeat_interleave(3)
    val = torch.nn.functional.normalize(w.repeat(2, 1) + 0.5 * torch.randn(8, d, generator=g), dim=1)
    yv = torch.arange(c).repeat(2)
    tip = TipAdapter(w, alpha=3.0).fit(sup, ys, val, yv)
    assert tip.alpha_ == 3.0 and tip.search_.coarse.alphas == [3.0]
    assert tip.beta_ in tip.search_.refined.betas
    axes = torch.nn.functional.normalize(torch.randn(40, d, generator=g), dim=1)
    coder = CoderAdapter(w, axes).fit(sup, ys, val, yv)
    assert coder.search_ is not None and coder.alpha_ == coder.search_.alpha
    assert coder.search_.val_accuracy >= coder.search_.zero_shot_val_accuracy  # α = 0 is in the grid
    fixed = CoderAdapter.validation_free(w, axes).fit(sup, ys)
    assert (fixed.alpha_, fixed.beta_, fixed.search_) == (1.0, 5.5, None)
    assert fixed.predict_proba(val).sum(1) == pytest.approx(np.ones(8), abs=1e-5)
    both = coder.predict_settings(val, [(coder.alpha_, coder.beta_), (1.0, 5.5)])
    assert (both[0] == coder.predict(val)).all() and (both[1] == fixed.predict(val)).all()
    assert 0.0 <= coder.score(val, yv) <= 1.0


def test_search_space_validation():
    with pytest.raises(ConfigError):
        SearchSpace(alphas=())
    with pytest.raises(ConfigError):
        SearchSpace(betas=(1.0, -2.0))
    with pytest.raises(ConfigError):
        SearchSpace(alphas=(math.inf,))
    assert SearchSpace(alphas=(2, 1, 2)).alphas == (1.0, 2.0)
    with pytest.raises(ConfigError):
        search_alpha_beta(cache_for([0, 1], 2), torch.zeros(0, 2), torch.zeros(0, 2),
                          torch.zeros(0, dtype=torch.long))


def test_coarse_grid_grows_past_its_top_edge_when_the_best_point_is_there():
    # Both samples are class 1, zero-shot prefers class 0 by 1 and by 0.5 logits; with affinities
    # [0, 1] a sample is right iff α(1 − e^{−β}) beats its margin. On α ∈ {0, 0.5, 1} only the
    # second sample can be right (best point on the top α edge); α = 2, β = 2 gets both.
    zs = torch.tensor([[1.0, 0.0], [0.5, 0.0]])
    aff = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    y = torch.tensor([1, 1])
    space = SearchSpace(alphas=(0.0, 0.5, 1.0), betas=(1.0, 2.0), refine=0)
    res = search_alpha_beta(cache_for([0, 1], 2), zs, aff, y, space)
    assert res.coarse.alphas[:3] == [0.0, 0.5, 1.0] and res.coarse.alphas[3:] == [2.0, 4.0, 8.0, 16.0]
    assert res.coarse.betas == [1.0, 2.0]     # β = 1 ties with β = 2 and wins: not on the edge
    assert res.val_accuracy == 100.0 and res.alpha >= 2.0
    fixed = search_alpha_beta(cache_for([0, 1], 2), zs, aff, y,
                              SearchSpace(alphas=(0.0, 0.5, 1.0), betas=(1.0, 2.0), refine=0, extend=0))
    assert fixed.val_accuracy == 50.0 and fixed.coarse.alphas == [0.0, 0.5, 1.0]
