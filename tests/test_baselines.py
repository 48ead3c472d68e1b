"""The training-free peers (DCLIP, CuPL-style, WaffleCLIP) against loops written from their
formulas, on random inputs; and the "noise" row of the CODER ablation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coderclip.baselines import BaselineTables, prototype_scores
from coderclip.bank.textbank import TEXT_TYPES, TextBank
from coderclip.classifier import CoderClassifier
from coderclip.knowledge.noise import WAFFLE_COUNT, WAFFLE_SEEDS, random_descriptors, vocabulary
from coderclip.knowledge.templates import get_domain
from coderclip.scoring import CoderTables, heuristic_scores

from .helpers import HashEncoder, random_knowledge


@pytest.fixture(scope="module")
def setup():
    enc = HashEncoder(dim=24)
    kn = random_knowledge(9, seed=3)
    bank = TextBank.build(kn, enc, types=TEXT_TYPES, cache=False)
    x = torch.nn.functional.normalize(torch.randn(17, 24, generator=torch.Generator().manual_seed(1)), dim=1)
    return enc, kn, bank, x


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / v.norm()


def _embed(enc, text: str) -> torch.Tensor:
    return enc.encode_texts([text])[0]


def test_dclip_is_the_mean_similarity_to_its_descriptor_sentences(setup):
    enc, kn, bank, x = setup
    scores = prototype_scores(x, BaselineTables.from_bank(bank).dclip)
    expected = torch.zeros(len(x), len(kn))
    for c, ck in enumerate(kn.classes):
        texts = [f"{ck.name}, which has {a}." for a in ck.attributes] or [f"a photo of a {ck.name}."]
        for i in range(len(x)):
            expected[i, c] = 100 * np.mean([float(x[i] @ _embed(enc, t)) for t in texts])
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-4)


def test_cupl_uses_the_normalised_mean_of_the_description_sentences(setup):
    enc, kn, bank, x = setup
    peers = BaselineTables.from_bank(bank)
    dom = get_domain(kn.domain)
    for with_templates, proto in ((False, peers.cupl), (True, peers.cupl_templates)):
        expected = torch.zeros(len(x), len(kn))
        for c, ck in enumerate(kn.classes):
            texts = [dom.attribute(ck.name, a) for a in ck.attributes] + \
                [dom.analogous(ck.name, a) for a in ck.analogous]
            if with_templates:
                texts += dom.ensemble_prompts(ck.name)
            if not texts:
                texts = [dom.name_prompt(ck.name)]  # nothing to average: the name prompt
            centre = _unit(torch.stack([_embed(enc, t) for t in texts]).mean(0))
            expected[:, c] = 100 * (x @ centre)
        torch.testing.assert_close(prototype_scores(x, proto), expected, rtol=1e-5, atol=1e-4)


def test_waffle_averages_random_descriptor_prompts_per_seed(setup):
    enc, kn, bank, x = setup
    peers = BaselineTables.from_bank(bank)
    assert peers.n_seeds == len(WAFFLE_SEEDS)
    for s, seed in enumerate(WAFFLE_SEEDS):
        expected = torch.zeros(len(x), len(kn))
        for c, ck in enumerate(kn.classes):
            sims = [x @ _embed(enc, f"a photo of a {ck.name}, which has {d}.")
                    for d in random_descriptors(seed)]
            expected[:, c] = 100 * torch.stack(sims).mean(0)
        torch.testing.assert_close(prototype_scores(x, peers.waffle[s]), expected, rtol=1e-5, atol=1e-4)


def test_noise_row_is_coder_with_random_descriptions(setup):
    enc, kn, bank, x = setup
    tables = CoderTables.from_bank(bank, types=("name", "noise"))
    noise = random_descriptors(WAFFLE_SEEDS[0])
    expected = torch.zeros(len(x), len(kn))
    for c, ck in enumerate(kn.classes):
        group = sum(x @ _embed(enc, f"a photo of a {ck.name}, which has {d}.") for d in noise)
        expected[:, c] = 100 * (group + x @ _embed(enc, f"a photo of a {ck.name}.")) / (len(noise) + 1)
    torch.testing.assert_close(heuristic_scores(x, tables), expected, rtol=1e-5, atol=1e-4)


def test_random_descriptors_are_fixed_per_seed_and_differ_between_seeds():
    a, b = random_descriptors(0), random_descriptors(1)
    assert a == random_descriptors(0) and a != b and len(a) == WAFFLE_COUNT
    words = set(vocabulary())
    assert len(words) > 10_000
    assert all(w in words for w in a[0].split())   # word noise from the CLIP vocabulary


@pytest.mark.parametrize("method", ["dclip", "cupl", "cupl-templates", "waffle"])
def test_classifier_exposes_each_peer_method(setup, method):
    enc, kn, bank, x = setup
    clf = CoderClassifier(enc, kn, method=method, cache=False).fit()
    scores = clf.decision_function(embeddings=x)
    peers = BaselineTables.from_bank(clf.bank_)
    proto = {"dclip": peers.dclip, "cupl": peers.cupl, "cupl-templates": peers.cupl_templates,
             "waffle": None if peers.waffle is None else peers.waffle.mean(0)}[method]
    np.testing.assert_allclose(scores, prototype_scores(x, proto).numpy(), rtol=1e-5, atol=1e-4)
    assert (clf.predict_index(embeddings=x) == scores.argmax(1)).all()
