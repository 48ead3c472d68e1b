"""The scikit-learn-style classifier on images (paths, PIL, tensors) and on embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coderclip.classifier import METHODS, CoderClassifier
from coderclip.errors import ConfigError
from coderclip.images import load_image

from .helpers import HashEncoder, random_knowledge


def test_init_does_no_work_and_fit_builds(small_knowledge):
    enc = HashEncoder(8)
    clf = CoderClassifier(enc, small_knowledge)
    assert enc.text_calls == 0 and not hasattr(clf, "bank_")
    assert clf.fit() is clf and list(clf.classes_) == ["lime", "lemon", "orange"]


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_predicts_consistently(method):
    kn = random_knowledge(8, seed=1)
    clf = CoderClassifier(HashEncoder(16), kn, method=method, tau=1.0).fit()
    x = torch.nn.functional.normalize(torch.randn(20, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    idx = clf.predict_index(embeddings=x)
    proba = clf.predict_proba(embeddings=x)
    top, p = clf.top_k(embeddings=x, k=3)
    assert idx.shape == (20,) and proba.shape == (20, 8)
    assert np.allclose(proba.sum(1), 1, atol=1e-5)
    assert (top[:, 0] == idx).all(), "top_k's first class is the prediction"
    assert list(clf.predict(embeddings=x)) == [kn.class_names[i] for i in idx]
    if method != "coder-rerank":
        assert (proba.argmax(1) == idx).all()
    assert 0 <= clf.score(embeddings=x, y=idx) == 1.0


def test_rerank_can_change_the_prediction_and_keeps_k_classes():
    kn = random_knowledge(10, seed=4, contrast_neighbours=4)
    enc = HashEncoder(16)
    x = torch.nn.functional.normalize(torch.randn(200, 16, generator=torch.Generator().manual_seed(3)), dim=1)
    plain = CoderClassifier(enc, kn, method="coder").fit().predict_index(embeddings=x)
    rr = CoderClassifier(enc, kn, method="coder-rerank", tau=1.0).fit()
    top, _ = rr.top_k(embeddings=x, k=7)
    assert (rr.predict_index(embeddings=x) != plain).any()
    assert all(len(set(row)) == 7 for row in top.tolist())


def test_image_inputs_agree(open_clip_encoder, image_files, small_knowledge):
    clf = CoderClassifier(open_clip_encoder, small_knowledge).fit()
    paths = [image_files["jpeg"], image_files["gray"]]
    by_path = clf.decision_function(paths)
    by_pil = clf.decision_function([load_image(p) for p in paths])
    by_tensor = clf.decision_function(torch.stack([open_clip_encoder.preprocess(load_image(p)) for p in paths]))
    assert np.allclose(by_path, by_pil, atol=1e-5) and np.allclose(by_path, by_tensor, atol=1e-5)
    emb = clf.encode(paths)
    assert np.allclose(clf.decision_function(embeddings=emb), by_path, atol=1e-5)


def test_bad_arguments(small_knowledge):
    enc = HashEncoder(8)
    with pytest.raises(ConfigError, match="unknown method"):
        CoderClassifier(enc, small_knowledge, method="magic").fit()
    with pytest.raises(ConfigError, match="tau must be within"):
        CoderClassifier(enc, small_knowledge, tau=3).fit()
    clf = CoderClassifier(enc, small_knowledge).fit()
    with pytest.raises(ConfigError, match=r"shape \[N, 8\]"):
        clf.predict(embeddings=torch.randn(2, 5))
    with pytest.raises(ConfigError, match="exactly one of"):
        clf.predict()


def test_knowledge_by_pack_name():
    clf = CoderClassifier(HashEncoder(8), "cifar100", method="coder").fit()
    assert len(clf.classes_) == 100 and clf.bank_.count("attribute") > 500
