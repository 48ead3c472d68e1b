"""The scorer against hand-computed values and against the loop implementation."""

from __future__ import annotations

import math

import pytest
import torch

from tests.reference import ReleaseLoopScorer, loop_heuristic_scores, loop_rerank
from coderclip.scoring import (CoderTables, clip_scores, coder_vectors, confidence_gap,
                               heuristic_scores, pairwise_scores, rerank_top_k)
from coderclip.bank.textbank import TEXT_TYPES, TextBank

from .helpers import HashEncoder, random_knowledge

T = {t: i for i, t in enumerate(TEXT_TYPES)}


def manual_bank(class_names, items, dim):
    """A bank from explicit (class, type, vector, other) entries; vectors are normalised."""
    texts, emb, rows = [], [], []
    for c, t, v, other in items:
        texts.append(f"text {len(texts)}")
        v = torch.tensor(v, dtype=torch.float32)
        emb.append(v / v.norm())
        rows.append((len(texts) - 1, c, T[t], other))
    r = torch.tensor(rows)
    return TextBank(class_names=list(class_names), texts=texts, embeddings=torch.stack(emb),
                    entry_row=r[:, 0], entry_class=r[:, 1], entry_type=r[:, 2], entry_other=r[:, 3],
                    encoder_identity="manual", domain="generic", knowledge_digest="x")


def test_heuristic_scores_hand_computed():
    bank = manual_bank(["a", "b"], [
        (0, "name", [1, 0], -1), (0, "synonym", [0, 1], -1),
        (0, "attribute", [0.6, 0.8], -1), (0, "analogous", [0, 1], -1),
        (1, "name", [0.8, 0.6], -1), (1, "attribute", [1, 0], -1),
    ], 2)
    x = torch.tensor([[1.0, 0.0]])
    s = heuristic_scores(x, CoderTables.from_bank(bank))
    # class a: (0.6 + 0 + max(1, 0)) / 3 ; class b: (1 + 0.8) / 2
    assert s[0, 0].item() == pytest.approx(100 * 1.6 / 3, abs=1e-4)
    assert s[0, 1].item() == pytest.approx(90.0, abs=1e-4)
    # without attributes/analogous it is CLIP with synonym max-pooling
    s_p = heuristic_scores(x, CoderTables.from_bank(bank, types=("name", "synonym")))
    assert s_p[0].tolist() == pytest.approx([100.0, 80.0], abs=1e-4)
    # without synonyms the name prompt alone
    s_n = heuristic_scores(torch.tensor([[0.0, 1.0]]), CoderTables.from_bank(bank, types=("name",)))
    assert s_n[0].tolist() == pytest.approx([0.0, 60.0], abs=1e-4)
    # CODER vectors: one column per distinct general text
    phi = coder_vectors(x, CoderTables.from_bank(bank))
    assert phi.shape == (1, 6)


def test_clip_baselines_hand_computed():
    bank = manual_bank(["a", "b"], [
        (0, "name", [1, 0], -1), (1, "name", [0, 1], -1),
        (0, "ensemble", [1, 1], -1), (0, "ensemble", [1, -1], -1), (1, "ensemble", [0, 1], -1),
    ], 2)
    tables = CoderTables.from_bank(bank)
    x = torch.tensor([[0.6, 0.8]])
    assert clip_scores(x, tables)[0].tolist() == pytest.approx([60.0, 80.0], abs=1e-4)
    # ensemble of class a: mean of (1,1)/√2 and (1,-1)/√2 = (1/√2, 0) -> normalised (1, 0)
    assert clip_scores(x, tables, ensemble=True)[0].tolist() == pytest.approx([60.0, 80.0], abs=1e-4)


def rerank_bank():
    """Three classes; x = e0. O(c|c') mean embeddings chosen so that x·O is known."""
    e = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    items = [(c, "name", e[c], -1) for c in range(3)]
    items += [
        (0, "contrast", [0, 1, 0], 1), (0, "contrast", [1, 1, 0], 1),  # x·: 0 and 0.7071 -> mean 0.35355
        (1, "contrast", [1, 0, 0], 0),                                    # 1.0
        (0, "contrast", [1, 0, 0], 2),                                    # 1.0
        (2, "contrast", [0, 0, 1], 0),                                    # 0.0
        (1, "contrast", [1, 0, 1], 2),                                    # 0.7071
        (2, "contrast", [1, 1, 1], 1),                                    # 0.57735
    ]
    return manual_bank(["a", "b", "c"], items, 3)


def test_pairwise_scores_hand_computed():
    bank = rerank_bank()
    tables = CoderTables.from_bank(bank)
    x = torch.tensor([[1.0, 0.0, 0.0]])
    r = pairwise_scores(x, torch.tensor([[0, 1, 2]]), tables)
    m01, m10, m02, m20, m12, m21 = 0.5 / math.sqrt(2), 1.0, 1.0, 0.0, 1 / math.sqrt(2), 1 / math.sqrt(3)
    expected = [((m01 - m10) + (m02 - m20)) / 2,
                ((m10 - m01) + (m12 - m21)) / 2,
                ((m20 - m02) + (m21 - m12)) / 2]
    assert r[0].tolist() == pytest.approx(expected, abs=1e-5)


def test_rerank_changes_low_confidence_only():
    bank = rerank_bank()
    tables = CoderTables.from_bank(bank)
    x = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    scores = torch.tensor([[10.0, 9.9, 9.8], [30.0, 1.0, 0.0]])   # second sample is confident
    res = rerank_top_k(x, scores, tables, top_k=3, tau=0.5)
    assert res.reranked.tolist() == [True, False]
    # r for sample 0: a = (−0.646 + 1)/2 = 0.177, b = (0.646 + 0.130)/2 = 0.388, c = (−1 − 0.130)/2
    assert res.prediction.tolist() == [1, 0]
    assert res.ranking()[0].tolist() == [1, 0, 2]
    assert res.gap[1].item() == pytest.approx(1.0, abs=1e-6)


def test_rerank_missing_pairs_count_as_zero():
    """A pair contributes only when both directions have texts; otherwise it adds 0."""
    e = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    items = [(c, "name", e[c], -1) for c in range(3)]
    items += [(1, "contrast", [1, 0, 0], 0)]          # only one direction for (1, 0): ignored
    items += [(2, "contrast", [1, 0, 0], 0), (0, "contrast", [0, 1, 0], 2)]   # c beats a
    bank = manual_bank(["a", "b", "c"], items, 3)
    tables = CoderTables.from_bank(bank)
    x = torch.tensor([[1.0, 0.0, 0.0]])
    r = pairwise_scores(x, torch.tensor([[0, 1, 2]]), tables)
    assert r[0].tolist() == pytest.approx([-0.5, 0.0, 0.5], abs=1e-6)


def test_rerank_ties_keep_stage1_order_and_no_pairs_is_noop():
    e = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    bank = manual_bank(["a", "b", "c"], [(c, "name", e[c], -1) for c in range(3)], 3)
    tables = CoderTables.from_bank(bank)
    x = torch.tensor([[0.0, 0.0, 1.0]])
    scores = torch.tensor([[5.0, 5.1, 5.05]])
    res = rerank_top_k(x, scores, tables, top_k=3, tau=1.0)
    assert res.reranked.item() and res.prediction.item() == 1  # all r are 0: stage-1 winner stays


def test_rerank_k_larger_than_classes_and_single_class():
    bank = rerank_bank()
    tables = CoderTables.from_bank(bank)
    x = torch.tensor([[1.0, 0.0, 0.0]])
    res = rerank_top_k(x, torch.tensor([[10.0, 9.9, 9.8]]), tables, top_k=50, tau=1.0)
    assert res.candidates.shape == (1, 3) and res.prediction.item() == 1
    one = manual_bank(["only"], [(0, "name", [1, 0], -1)], 2)
    t1 = CoderTables.from_bank(one)
    res1 = rerank_top_k(torch.tensor([[1.0, 0.0]]), torch.tensor([[3.0]]), t1, top_k=5, tau=1.0)
    assert res1.prediction.tolist() == [0] and not res1.reranked.any()
    assert confidence_gap(torch.tensor([[3.0]])).tolist() == [1.0]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_matches_fp32(dtype):
    kn = random_knowledge(12, seed=3)
    bank = TextBank.build(kn, HashEncoder(32), cache=False)
    x = torch.nn.functional.normalize(torch.randn(64, 32, generator=torch.Generator().manual_seed(1)), dim=1)
    t32 = CoderTables.from_bank(bank)
    tlo = CoderTables.from_bank(bank, dtype=dtype)
    s32, slo = heuristic_scores(x, t32), heuristic_scores(x.to(dtype), tlo)
    assert slo.dtype == torch.float32
    assert torch.allclose(s32, slo, atol=0.5)  # scores are ×100: half precision error is well below 1
    r32 = rerank_top_k(x, s32, t32, top_k=5, tau=1.0)
    rlo = rerank_top_k(x.to(dtype), s32, tlo, top_k=5, tau=1.0)
    # the rerank really runs in low precision (the authors' version silently skipped it in fp32)
    assert torch.equal(rlo.reranked, r32.reranked) and rlo.reranked.sum() > 10
    assert rlo.pair_scores.abs().sum() > 0
    assert (r32.prediction == rlo.prediction).float().mean() > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_matches_loop_version(seed):
    kn = random_knowledge(15, seed=seed)
    bank = TextBank.build(kn, HashEncoder(24), cache=False)
    g = torch.Generator().manual_seed(seed)
    x = torch.nn.functional.normalize(torch.randn(40, 24, generator=g), dim=1)
    for types in [("name",), ("name", "attribute"), ("name", "attribute", "analogous", "synonym")]:
        fast = heuristic_scores(x, CoderTables.from_bank(bank, types=types))
        slow = loop_heuristic_scores(x, bank, types)
        assert torch.allclose(fast.double(), slow, atol=1e-3), types
    tables = CoderTables.from_bank(bank)
    s = heuristic_scores(x, tables)
    for k, tau in [(5, 1.0), (3, 0.3), (20, 1.0), (2, 0.0)]:
        fast = rerank_top_k(x, s, tables, top_k=k, tau=tau).prediction
        slow = loop_rerank(x, s, bank, top_k=k, tau=tau)
        assert fast.tolist() == slow.tolist(), (k, tau)


def test_chunked_rerank_equals_single_chunk():
    kn = random_knowledge(10, seed=5)
    bank = TextBank.build(kn, HashEncoder(16), cache=False)
    tables = CoderTables.from_bank(bank)
    x = torch.nn.functional.normalize(torch.randn(33, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    s = heuristic_scores(x, tables)
    a = rerank_top_k(x, s, tables, tau=1.0, chunk_size=4)
    b = rerank_top_k(x, s, tables, tau=1.0)
    assert torch.equal(a.prediction, b.prediction) and torch.allclose(a.pair_scores, b.pair_scores)


def test_heuristic_name_buckets_and_nameless_class():
    """Classes with 1, 2 and 3 name texts (one bucket each) and a class with none."""
    bank = manual_bank(["one", "two", "three", "none"], [
        (0, "name", [1, 0, 0], -1), (0, "attribute", [0, 1, 0], -1),
        (1, "name", [0, 1, 0], -1), (1, "synonym", [1, 1, 0], -1),
        (2, "name", [0, 0, 1], -1), (2, "synonym", [1, 0, 1], -1), (2, "synonym", [1, 0, 0], -1),
        (2, "analogous", [0, 1, 1], -1),
        (3, "attribute", [1, 0, 0], -1),
    ], 3)
    tables = CoderTables.from_bank(bank)
    assert [k for k, _, _ in tables.name_buckets] == [2, 3] and tables.nameless.tolist() == [3]
    assert tables.score_emb.shape == (4 + 2 + 3, 3)
    x = torch.tensor([[0.6, 0.8, 0.0]])
    s = heuristic_scores(x, tables)[0]
    r2 = 1 / math.sqrt(2)
    assert s[0].item() == pytest.approx(100 * (0.8 + 0.6) / 2, abs=1e-4)
    assert s[1].item() == pytest.approx(100 * max(0.8, 1.4 * r2), abs=1e-4)
    assert s[2].item() == pytest.approx(100 * (0.8 * r2 + max(0.0, 0.6 * r2, 0.6)) / 2, abs=1e-4)
    assert s[3].item() == float("-inf")


@pytest.mark.parametrize("seed", [0, 1])
def test_release_loop_structure_gives_same_predictions(seed):
    """The benchmark baseline (the authors' loop structure) and the vectorised scorer agree."""
    kn = random_knowledge(30, seed=seed, contrast_neighbours=4)
    bank = TextBank.build(kn, HashEncoder(24), cache=False)
    x = torch.nn.functional.normalize(torch.randn(70, 24, generator=torch.Generator().manual_seed(seed)), dim=1)
    tables = CoderTables.from_bank(bank)
    loop = ReleaseLoopScorer(bank)
    s_fast = heuristic_scores(x, tables)
    s_loop = torch.cat([loop.heuristic_scores(x[i:i + 32]) for i in range(0, 70, 32)])
    assert torch.allclose(s_fast, s_loop, atol=1e-4)
    for k, tau in [(5, float("inf")), (3, 0.3), (2, 0.0)]:
        fast = rerank_top_k(x, s_fast, tables, top_k=k, tau=tau).prediction
        assert loop.predict(x, top_k=k, tau=tau).tolist() == fast.tolist(), (k, tau)


def test_confidence_gap_equals_softmax_gap():
    scores = 100 * torch.rand(50, 30, generator=torch.Generator().manual_seed(0)) / 10
    top2 = torch.softmax(scores, dim=1).topk(2, dim=1).values
    assert torch.allclose(confidence_gap(scores), top2[:, 0] - top2[:, 1], atol=1e-6)
    res = rerank_top_k(torch.zeros(50, 4), scores, CoderTables.from_bank(rerank_bank_4d()), top_k=1, tau=1.0)
    assert torch.allclose(res.gap, top2[:, 0] - top2[:, 1], atol=1e-6) and not res.reranked.any()


def rerank_bank_4d():
    return manual_bank([f"c{i}" for i in range(30)], [(c, "name", [1, 0, 0, c], -1) for c in range(30)], 4)


def test_tables_to_matches_building_in_that_dtype():
    bank = TextBank.build(random_knowledge(8, seed=2), HashEncoder(16), cache=False)
    a = CoderTables.from_bank(bank).to(dtype=torch.bfloat16)
    b = CoderTables.from_bank(bank, dtype=torch.bfloat16)
    assert a.score_emb.dtype == torch.bfloat16 and a.pair_key.dtype == torch.long
    x = torch.nn.functional.normalize(torch.randn(5, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    assert torch.equal(heuristic_scores(x, a), heuristic_scores(x, b))
    assert [(k, s, c.tolist()) for k, s, c in a.name_buckets] == [(k, s, c.tolist()) for k, s, c in b.name_buckets]
