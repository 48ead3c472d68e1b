"""A run encodes only the texts it reads: contrasts only for the class pairs the rerank can reach
for the run's images, with exactly the predictions of the full text bank."""

from __future__ import annotations

import numpy as np
import torch

from coderclip.bank.textbank import TextBank, contrast_pairs
from coderclip.evaluation.predict import bank_types, predict_zero_shot, reachable_pairs
from coderclip.knowledge import load_knowledge


def _images(encoder, n: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.nn.functional.normalize(torch.randn(n, encoder.embed_dim, generator=g), dim=-1)


def test_contrasts_of_reachable_pairs_give_the_full_banks_predictions(open_clip_encoder):
    kn = load_knowledge("cifar10")
    types = bank_types(None)
    full = TextBank.build(kn, open_clip_encoder, types=types, cache=False)
    general = TextBank.build(kn, open_clip_encoder, types=tuple(t for t in types if t != "contrast"),
                             cache=False)
    x = _images(open_clip_encoder)
    top_k, ks = 2, (2, 3)
    pairs = contrast_pairs(kn)
    reach = reachable_pairs(x, general, pairs, k=max(top_k, *ks), batch_size=16)
    assert 0 < len(reach) < len(pairs)  # a real restriction
    lazy = general.extended(TextBank.build(kn, open_clip_encoder, types=("contrast",), cache=False,
                                           contrast_pairs=reach))
    assert lazy.count("contrast") < full.count("contrast")
    a = predict_zero_shot(x, full, top_k=top_k, ks=ks, batch_size=16)
    b = predict_zero_shot(x, lazy, top_k=top_k, ks=ks, batch_size=16)
    assert a.ranking.keys() == b.ranking.keys()
    for m in a.ranking:
        np.testing.assert_array_equal(a.ranking[m], b.ranking[m], err_msg=m)
    for t in a.tau_sweep:
        np.testing.assert_array_equal(a.tau_sweep[t], b.tau_sweep[t])
    for k in a.k_sweep:
        np.testing.assert_array_equal(a.k_sweep[k], b.k_sweep[k])
    np.testing.assert_array_equal(a.reranked, b.reranked)
    # and the rerank's pair scores themselves, for every K up to the largest swept
    from coderclip.scoring import CoderTables, heuristic_scores, rerank_top_k

    s = heuristic_scores(x, CoderTables.from_bank(general))
    for k in (2, 3):
        ra = rerank_top_k(x, s, CoderTables.from_bank(full), top_k=k, tau=float("inf"))
        rb = rerank_top_k(x, s, CoderTables.from_bank(lazy), top_k=k, tau=float("inf"))
        assert torch.equal(ra.pair_scores, rb.pair_scores)


def test_reachable_pairs_are_those_among_each_images_top_k(open_clip_encoder):
    kn = load_knowledge("cifar10")
    general = TextBank.build(kn, open_clip_encoder, types=("name", "attribute"), cache=False)
    x = _images(open_clip_encoder, 5)
    everything = torch.tensor([(a, b) for a in range(10) for b in range(10) if a != b])
    reach = reachable_pairs(x, general, everything, k=1)
    assert reach == set()  # one candidate: nothing to compare
    reach = reachable_pairs(x, general, everything, k=2)
    from coderclip.scoring import CoderTables, heuristic_scores

    top = heuristic_scores(x, CoderTables.from_bank(general)).topk(2).indices.tolist()
    assert reach == {(a, b) for t in top for a in t for b in t if a != b}


def test_evaluate_encodes_only_reachable_contrasts(open_clip_encoder, tmp_path):
    from PIL import Image

    from coderclip.datasets import from_folder
    from coderclip.evaluation import evaluate

    kn = load_knowledge("cifar10")
    rng = np.random.default_rng(0)
    for i in range(20):
        c = tmp_path / kn.class_names[i % 10]
        c.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(c / f"{i}.jpg")
    ds = from_folder(tmp_path, class_names=kn.class_names)
    report = evaluate(open_clip_encoder, kn, ds, top_k=3, ks=(3,), cache=False, num_workers=0,
                      methods=["coder"])
    counts = report["provenance"]["text_bank"]
    assert 0 < counts["contrast"] < TextBank.build(kn, open_clip_encoder, types=("contrast",),
                                                   cache=False).count("contrast")
    assert counts["ensemble"] == 0  # not asked for
