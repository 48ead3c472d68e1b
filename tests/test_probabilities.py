"""Probabilities as the model defines them: the CLIP baselines agree with the transformers
zero-shot pipeline (learned logit scale; SigLIP's sigmoid with bias), and after the rerank the
reported ranking and its numbers agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from coderclip.classifier import CoderClassifier
from coderclip.encoders import load_encoder
from coderclip.knowledge import Knowledge

LABELS = ["cat", "dog", "airplane", "red apple"]


def _images(n: int = 3) -> list[Image.Image]:
    rng = np.random.default_rng(1)
    return [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(n)]


def _pipeline_scores(folder, images) -> np.ndarray:
    """The transformers pipeline's scores ``[N, C]`` in LABELS order."""
    from transformers import pipeline

    pipe = pipeline("zero-shot-image-classification", model=str(folder), device="cpu")
    out = np.zeros((len(images), len(LABELS)))
    for i, im in enumerate(images):
        res = pipe(im, candidate_labels=LABELS, hypothesis_template="a photo of a {}.")
        for r in res:
            out[i, LABELS.index(r["label"])] = r["score"]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_clip_baseline_probabilities_equal_transformers_pipeline(kind, hf_clip_dir, hf_siglip_dir,
                                                                tmp_path):
    import shutil

    from transformers import AutoModel

    folder = tmp_path / kind   # a copy whose learned scale and bias differ from any default
    shutil.copytree(hf_clip_dir if kind == "clip" else hf_siglip_dir, folder)
    model = AutoModel.from_pretrained(folder)
    if kind == "siglip":
        # the pipeline pads SigLIP texts to 64 tokens (its fixed training length): give the tiny
        # model 64 positions (the fixture's has 16)
        model.config.text_config.max_position_embeddings = 64
        torch.manual_seed(0)
        model = type(model)(model.config)
        # like SigLIP's own tokenizer, give input ids only (SigLIP takes no attention mask)
        from transformers import AutoTokenizer

        AutoTokenizer.from_pretrained(folder, model_input_names=["input_ids"]).save_pretrained(folder)
    with torch.no_grad():
        model.logit_scale.fill_(np.log(7.5))
        if kind == "siglip":
            model.logit_bias.fill_(-1.25)
    model.save_pretrained(folder)
    enc = load_encoder(f"hf:{folder}", device="cpu", precision="fp32")
    assert enc.probability == ("sigmoid" if kind == "siglip" else "softmax")
    assert enc.logit_scale == pytest.approx(7.5)
    images = _images()
    # the pipeline's hypothesis template, word for word (our preset would write "an airplane")
    kn = Knowledge.from_class_names(LABELS, domain="generic")
    clf = CoderClassifier(enc, kn, method="clip", cache=False,
                          templates={"name": "a photo of a {}."}).fit()
    ours = clf.predict_proba(images)
    theirs = _pipeline_scores(folder, images)
    np.testing.assert_allclose(ours, theirs, atol=1e-4)
    idx, p = clf.top_k(images, k=len(LABELS))
    np.testing.assert_allclose(p, np.take_along_axis(theirs, idx, 1), atol=1e-4)
    if kind == "clip":
        np.testing.assert_allclose(ours.sum(1), 1.0, atol=1e-5)
    else:
        assert not np.allclose(ours.sum(1), 1.0)   # independent sigmoids


def test_encoders_read_the_learned_scale(open_clip_encoder, hf_clip_dir):
    import open_clip  # noqa: F401

    assert open_clip_encoder.logit_scale == pytest.approx(
        float(open_clip_encoder.model.logit_scale.detach().exp()), rel=1e-6)
    assert open_clip_encoder.probability == "softmax"
    enc = load_encoder(f"hf:{hf_clip_dir}", device="cpu")
    assert enc.logit_scale == pytest.approx(float(enc.model.logit_scale.detach().exp()), rel=1e-6)
    assert enc.describe()["probability"] == "softmax"


def test_baseline_rankings_do_not_depend_on_the_scale(open_clip_encoder, small_knowledge):
    x = torch.nn.functional.normalize(torch.randn(20, open_clip_encoder.embed_dim), dim=1)
    clf = CoderClassifier(open_clip_encoder, small_knowledge, method="clip", cache=False).fit()
    a = clf.predict_index(embeddings=x)
    clf.logit_scale_, clf.logit_bias_ = 100.0, 0.0
    assert (clf.predict_index(embeddings=x) == a).all()
    clf.logit_scale_ = 3.0
    assert (clf.top_k(embeddings=x, k=3)[0] == CoderClassifier(
        open_clip_encoder, small_knowledge, method="clip", cache=False).fit().top_k(
        embeddings=x, k=3)[0]).all()


def test_reranked_ranking_and_numbers_agree(open_clip_encoder, small_knowledge):
    """Find samples whose rerank changed the answer; their shown probabilities must still be
    non-increasing, and predict_proba's argmax must be the prediction."""
    torch.manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(400, open_clip_encoder.embed_dim), dim=1)
    clf = CoderClassifier(open_clip_encoder, small_knowledge, method="coder-rerank", tau=1.0,
                          cache=False).fit()
    stage1 = CoderClassifier(open_clip_encoder, small_knowledge, method="coder", cache=False).fit()
    pred = clf.predict_index(embeddings=x)
    changed = pred != stage1.predict_index(embeddings=x)
    assert changed.any(), "no sample changed by the rerank: the test would prove nothing"
    idx, p = clf.top_k(embeddings=x, k=3)
    assert (idx[:, 0] == pred).all()
    assert (np.diff(p, axis=1) <= 1e-7).all()
    proba = clf.predict_proba(embeddings=x)
    assert (proba.argmax(1) == pred).all()
    np.testing.assert_allclose(np.take_along_axis(proba, idx, 1), p, atol=1e-5)
    # the set of numbers is the stage-1 one
    np.testing.assert_allclose(np.sort(proba, 1), np.sort(stage1.predict_proba(embeddings=x), 1),
                               atol=1e-5)
