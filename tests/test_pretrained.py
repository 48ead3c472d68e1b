"""save_pretrained / from_pretrained: a fitted classifier as a folder of JSON and safetensors,
reloaded without a text tower, its model identity checked; classify --classifier."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from coderclip.classifier import CoderClassifier
from coderclip.cli import main
from coderclip.encoders.base import Encoder
from coderclip.errors import ConfigError
from coderclip.features import FeatureSet, save_features
from coderclip.pretrained import model_identity


def _x(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g), dim=1)


@pytest.mark.parametrize("method", ["coder-rerank", "clip", "dclip"])
def test_round_trip_without_the_text_tower(method, tmp_path, open_clip_encoder, small_knowledge,
                                           monkeypatch):
    clf = CoderClassifier(open_clip_encoder, small_knowledge, method=method, tau=1.0,
                          cache=False).fit()
    folder = clf.save_pretrained(tmp_path / "clf")
    assert sorted(p.name for p in folder.iterdir()) == [
        "coderclip_config.json", "knowledge.json", "text_bank.safetensors"]
    x = _x(50, open_clip_encoder.embed_dim)

    def no_text(*a, **k):
        raise AssertionError("a saved classifier must not encode texts")

    monkeypatch.setattr(Encoder, "encode_texts", no_text)
    again = CoderClassifier.from_pretrained(folder)
    assert again.encoder is None and again.method == method and again.tau == 1.0
    assert list(again.classes_) == list(clf.classes_)
    np.testing.assert_array_equal(again.predict_index(embeddings=x), clf.predict_index(embeddings=x))
    np.testing.assert_allclose(again.predict_proba(embeddings=x), clf.predict_proba(embeddings=x),
                               atol=1e-6)
    i1, p1 = again.top_k(embeddings=x, k=3)
    i2, p2 = clf.top_k(embeddings=x, k=3)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(p1, p2, atol=1e-6)
    with pytest.raises(ConfigError, match="no encoder"):
        again.predict([np.zeros((8, 8, 3), np.uint8)])
    with_enc = CoderClassifier.from_pretrained(folder, encoder=open_clip_encoder)
    np.testing.assert_array_equal(with_enc.predict_index(embeddings=x), clf.predict_index(embeddings=x))


def test_learned_scale_is_saved(tmp_path, hf_clip_dir):
    from coderclip.encoders import load_encoder
    from coderclip.knowledge import Knowledge

    enc = load_encoder(f"hf:{hf_clip_dir}", device="cpu")
    clf = CoderClassifier(enc, Knowledge.from_class_names(["cat", "dog", "owl"]), method="clip",
                          cache=False).fit()
    clf.save_pretrained(tmp_path / "c")
    config = json.loads((tmp_path / "c" / "coderclip_config.json").read_text())
    assert config["encoder"]["logit_scale"] == pytest.approx(enc.logit_scale)
    again = CoderClassifier.from_pretrained(tmp_path / "c")
    assert again.logit_scale_ == pytest.approx(enc.logit_scale)
    x = _x(10, enc.embed_dim)
    np.testing.assert_allclose(again.predict_proba(embeddings=x), clf.predict_proba(embeddings=x),
                               atol=1e-6)


def test_identity_checked_on_load(tmp_path, open_clip_encoder, hf_clip_dir, small_knowledge):
    from coderclip.encoders import load_encoder

    CoderClassifier(open_clip_encoder, small_knowledge, cache=False).fit().save_pretrained(tmp_path / "c")
    other = load_encoder(f"hf:{hf_clip_dir}", device="cpu")
    with pytest.raises(ConfigError, match="was built with model 'open_clip.*hf\\|"):
        CoderClassifier.from_pretrained(tmp_path / "c", encoder=other)
    with pytest.raises(ConfigError, match="no saved classifier"):
        CoderClassifier.from_pretrained(tmp_path)
    (tmp_path / "c" / "knowledge.json").write_text(
        (tmp_path / "c" / "knowledge.json").read_text().replace("green peel", "blue peel"))
    with pytest.raises(ConfigError, match="do not belong together"):
        CoderClassifier.from_pretrained(tmp_path / "c")


def test_model_identity_ignores_precision_and_device():
    assert model_identity("open_clip|ViT-B-32|sha256:ab|fp16|cuda") == \
        model_identity("open_clip|ViT-B-32|sha256:ab|fp32|cpu") == "open_clip|ViT-B-32|sha256:ab"
    assert model_identity("hf|sha256:ab|float32|cpu") != model_identity("hf|sha256:cd|float32|cpu")


@pytest.mark.slow
def test_classify_with_a_saved_classifier_needs_no_model(tmp_path, open_clip_encoder, open_clip_spec,
                                                        small_knowledge, capsys):
    folder = tmp_path / "clf"
    CoderClassifier(open_clip_encoder, small_knowledge, cache=False).fit().save_pretrained(folder)
    x = _x(6, open_clip_encoder.embed_dim)
    feats = tmp_path / "f.safetensors"
    save_features(feats, FeatureSet(x, ids=[f"img{i}" for i in range(6)],
                                    model=open_clip_encoder.identity))
    assert main(["classify", "--features", str(feats), "--classifier", str(folder),
                 "--format", "json", "--top", "2"]) == 0
    saved = json.loads(capsys.readouterr().out)
    kfile = tmp_path / "k.json"
    small_knowledge.save(kfile)
    assert main(["classify", "--features", str(feats), "-m", open_clip_spec, "--device", "cpu",
                 "-k", str(kfile), "--format", "json", "--top", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["results"] == saved["results"]
    assert main(["classify", "--features", str(feats), "--classifier", str(folder), "-k", str(kfile)]) == 2
    assert "holds its own knowledge" in capsys.readouterr().err
    assert main(["classify", str(tmp_path), "--classifier", str(folder)]) == 2
    assert "needs the image tower" in capsys.readouterr().err
