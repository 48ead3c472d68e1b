"""The shared cache model: logits against hand-computed values, min–max edge cases, the CODER key
space's isometric compression, half-precision keys and blocked affinities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from coderclip.errors import ConfigError, NotFittedError
from coderclip.fewshot import cache_model
from coderclip.fewshot.adapters import CoderAdapter, TipAdapter
from coderclip.fewshot.cache_model import CacheModel, ClassIndex, CoderSpace, minmax_rows

# A tiny case worked out by hand (docs/method.md §6): D = 2, two classes, three support images.
X = [[0.8, 0.6]]                                # query, unit
W = [[1.0, 0.0], [0.0, 1.0]]                    # zero-shot classifier: 100·x̂W = [80, 60]
SUPPORT = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]  # labels 0, 1, 1
LABELS = [0, 1, 1]
AXES = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]     # three "texts": φ(x) = [x·t1, x·t2, x·t3]


def test_tip_adapter_logits_by_hand():
    # A = x·s = [0.8, 0.6, 0.96]; cache_0 = e^{-β·0.2}, cache_1 = e^{-β·0.4} + e^{-β·0.04}
    alpha, beta = 2.0, 1.0
    tip = TipAdapter(torch.tensor(W), alpha=alpha, beta=beta, key_dtype="float32")
    tip.fit(torch.tensor(SUPPORT), LABELS)
    got = tip.decision_function(torch.tensor(X))[0].tolist()
    want = [80 + alpha * math.exp(-0.2), 60 + alpha * (math.exp(-0.4) + math.exp(-0.04))]
    assert got == pytest.approx(want, abs=1e-4)
    assert want == pytest.approx([81.637462, 63.262218], abs=1e-5)


@pytest.mark.parametrize("compress", [False, True])
def test_coder_adapter_logits_by_hand(compress):
    # φ(x) = [0.8, 0.6, 0.96]; φ(s1) = [1, 0, 0.6]; φ(s2) = [0, 1, 0.8]; φ(s3) = [0.6, 0.8, 1]
    # cosines A = [1.376/√(1.9216·1.36), 1.368/√(1.9216·1.64), 1.92/√(1.9216·2)]
    a = [1.376 / math.sqrt(1.9216 * 1.36), 1.368 / math.sqrt(1.9216 * 1.64), 1.92 / math.sqrt(1.9216 * 2)]
    assert a == pytest.approx([0.851172, 0.770607, 0.979388], abs=1e-6)
    lo, hi = min(a), max(a)
    at = [(v - lo) / (hi - lo) for v in a]             # [0.385886, 0, 1]
    alpha, beta = 3.0, 2.0
    want = [80 + alpha * math.exp(-beta * (1 - at[0])),
            60 + alpha * (math.exp(-beta * (1 - at[1])) + math.exp(-beta * (1 - at[2])))]
    assert want == pytest.approx([80.878433, 63.406006], abs=1e-5)
    coder = CoderAdapter(torch.tensor(W), torch.tensor(AXES), compress=compress, alpha=alpha,
                         beta=beta, key_dtype="float32")
    coder.fit(torch.tensor(SUPPORT), LABELS)
    assert coder.space_.compressed == compress          # K = 3 > D = 2
    aff = coder.cache_.affinity(torch.tensor(X))[0]
    order = torch.argsort(torch.tensor(LABELS), stable=True)
    assert aff.tolist() == pytest.approx([at[i] for i in order.tolist()], abs=1e-5)
    assert coder.decision_function(torch.tensor(X))[0].tolist() == pytest.approx(want, abs=1e-4)


def test_minmax_ordinary_row():
    a = torch.tensor([[0.2, 0.5, 0.4, 0.3]])
    assert minmax_rows(a).tolist()[0] == pytest.approx([0.0, 1.0, 2 / 3, 1 / 3], abs=1e-6)


def test_minmax_equal_row_is_all_ones_without_nan():
    a = torch.tensor([[0.7, 0.7, 0.7], [0.1, 0.3, 0.2], [0.0, 0.0, 0.0], [-0.4, -0.4, -0.4]])
    out = minmax_rows(a)
    assert not torch.isnan(out).any()
    assert out[0].tolist() == [1.0, 1.0, 1.0]
    assert out[2].tolist() == [1.0, 1.0, 1.0]
    assert out[3].tolist() == [1.0, 1.0, 1.0]
    assert out[1].tolist() == pytest.approx([0.0, 1.0, 0.5])


def test_minmax_rounding_level_spread_counts_as_equal():
    # Differences at the level of float rounding must not be blown up to the whole [0, 1] range.
    base = torch.full((1, 4), 0.9731, dtype=torch.float32)
    noisy = base + torch.tensor([[0.0, 1.0, 0.0, -1.0]]) * torch.finfo(torch.float32).eps * 0.5
    assert minmax_rows(noisy).tolist()[0] == [1.0] * 4


def test_single_support_image_gives_full_evidence_to_its_class():
    # One key: the row has a single affinity -> Ã = 1 -> cache = e^0 = 1 for its class.
    coder = CoderAdapter(torch.tensor(W), torch.tensor(AXES), alpha=5.0, beta=3.0, key_dtype="float32")
    coder.fit(torch.tensor([[0.0, 1.0]]), [1])
    logits = coder.decision_function(torch.tensor(X + [[0.0, 1.0]]))
    assert not np.isnan(logits).any()
    assert logits[0].tolist() == pytest.approx([80.0, 60.0 + 5.0], abs=1e-4)


def test_evidence_sums_per_class_balanced_and_unbalanced():
    rng = np.random.default_rng(0)
    for labels in ([0, 0, 1, 1, 2, 2], [0, 2, 2, 2, 1], [1, 1, 1]):
        lab = torch.tensor(sorted(labels))
        e = torch.tensor(rng.random((4, len(labels))), dtype=torch.float32)
        onehot = torch.nn.functional.one_hot(lab, 3).float()
        assert torch.allclose(ClassIndex(lab, 3).sum(e), e @ onehot, atol=1e-6)
    # unsorted labels must not take the reshape shortcut
    lab = torch.tensor([1, 0, 1, 0])
    e = torch.rand(2, 4)
    assert torch.allclose(ClassIndex(lab, 2).sum(e), e @ torch.nn.functional.one_hot(lab, 2).float())


def test_compressed_coder_space_preserves_inner_products():
    g = torch.Generator().manual_seed(0)
    axes = torch.nn.functional.normalize(torch.randn(300, 16, generator=g) + 2.0, dim=1)
    x = torch.nn.functional.normalize(torch.randn(50, 16, generator=g), dim=1)
    explicit, compact = CoderSpace(axes, compress=False), CoderSpace(axes)
    assert explicit.dim == 300 and compact.dim == 16 and compact.compressed
    pe, pc = explicit(x), compact(x)
    assert torch.allclose(pc @ pc.T, pe @ pe.T, rtol=1e-5, atol=1e-4)


def test_half_precision_keys_and_blocked_affinities_match_float32(monkeypatch):
    g = torch.Generator().manual_seed(1)
    axes = torch.nn.functional.normalize(torch.randn(400, 32, generator=g) + 1.5, dim=1)
    sup = torch.nn.functional.normalize(torch.randn(60, 32, generator=g), dim=1)
    q = torch.nn.functional.normalize(torch.randn(40, 32, generator=g), dim=1)
    labels = torch.arange(60) % 6
    space = CoderSpace(axes)
    ref = CacheModel.build(space(sup), labels, 6, minmax=True, key_dtype="float32").affinity(space(q))
    half = CacheModel.build(space(sup), labels, 6, minmax=True, key_dtype="float16")
    assert half.keys.dtype == torch.float16 and half.nbytes() == 60 * 32 * 2
    monkeypatch.setattr(cache_model, "_BLOCK_ELEMS", 64)    # force many query and key blocks
    got = half.affinity(space(q))
    # the space applied inside the cache, block by block, gives the same keys and affinities
    inside = CacheModel.build(sup, labels, 6, minmax=True, space=space, key_dtype="float16")
    assert torch.equal(inside.keys, half.keys)
    assert torch.allclose(inside.affinity(q), got, atol=1e-6)
    # the explicit form's fp16 error, for comparison: the rotated compact form must be no worse
    explicit = CoderSpace(axes, compress=False)
    exp_half = CacheModel.build(explicit(sup), labels, 6, minmax=True,
                                key_dtype="float16").affinity(explicit(q))
    err, err_explicit = (got - ref).abs().max().item(), (exp_half - ref).abs().max().item()
    assert err < 2e-3
    assert err <= 2 * err_explicit + 1e-3


def test_cache_rejects_bad_input():
    with pytest.raises(ConfigError):
        CacheModel.build(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), 2, minmax=False)
    with pytest.raises(ConfigError):
        CacheModel.build(torch.rand(3, 4), torch.tensor([0, 1, 2]), 2, minmax=False)
    with pytest.raises(ConfigError):
        TipAdapter(torch.tensor(W)).fit(torch.tensor(SUPPORT), LABELS)  # no validation, no fixed α/β
    with pytest.raises(ConfigError):
        TipAdapter(torch.tensor(W), alpha=1, beta=1).fit(torch.rand(3, 5), LABELS)  # wrong D
    with pytest.raises(NotFittedError):
        TipAdapter(torch.tensor(W), alpha=1, beta=1).predict(torch.tensor(X))


def test_auto_key_dtype_is_half_only_for_large_keys_on_accelerators():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert cache_model.resolve_key_dtype("auto", cpu, 10**9) == torch.float32
    assert cache_model.resolve_key_dtype("auto", cuda, 16000 * 512) == torch.float32
    assert cache_model.resolve_key_dtype("auto", cuda, 16000 * 15000) == torch.float16
    assert cache_model.resolve_key_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError):
        cache_model.resolve_key_dtype("int8", cpu)


def test_coder_adapter_accepts_a_shared_coder_space():
    g = torch.Generator().manual_seed(2)
    axes = torch.nn.functional.normalize(torch.randn(50, 8, generator=g), dim=1)
    w = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=1)
    sup, x = torch.randn(6, 8, generator=g), torch.randn(5, 8, generator=g)
    y = [0, 0, 1, 1, 2, 2]
    space = CoderSpace(axes)
    a = CoderAdapter(w, axes, alpha=2.0, beta=4.0).fit(sup, y)
    b = CoderAdapter(w, space, alpha=2.0, beta=4.0).fit(sup, y)
    assert b.space_ is space
    assert np.allclose(a.decision_function(x), b.decision_function(x), atol=1e-5)
