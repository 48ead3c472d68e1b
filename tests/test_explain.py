"""Explanations against a case computed by hand: texts embedded at chosen unit vectors, so every
score, the rerank's decision and each text's share are known in closed form."""

from __future__ import annotations

import json
import math

import pytest
import torch

from coderclip.classifier import CoderClassifier
from coderclip.encoders.base import Encoder
from coderclip.knowledge import ClassKnowledge, Knowledge

# keyword -> axis of a 4-d space; checked in this order (features before class names, because
# contrast and attribute texts also name their classes)
AXES = [("whiskers", 0), ("floppy ears", 1), ("bushy tail", 2), ("wolf", 1), ("kitty", 1),
        ("pointy snout", 2), ("wet nose", 3), ("cat", 0), ("dog", 1), ("fox", 2), ("owl", 3)]


class AxisEncoder(Encoder):
    """Each text lands on the unit axis of the first keyword it contains."""

    def __init__(self):
        self.embed_dim, self.device, self.dtype = 4, torch.device("cpu"), torch.float32
        self.identity = self.name = "axis-encoder"
        self.preprocess = None

    def _encode_text_batch(self, texts):
        out = torch.zeros(len(texts), 4)
        for i, t in enumerate(texts):
            out[i, next(axis for word, axis in AXES if word in t)] = 1.0
        return out

    def _encode_image_batch(self, pixels):  # pragma: no cover - embeddings are given directly
        raise NotImplementedError


@pytest.fixture()
def pets() -> Knowledge:
    return Knowledge([
        ClassKnowledge("cat", synonyms=["kitty"], attributes=["whiskers"],
                       contrasts={"dog": ["pointy snout"]}),
        ClassKnowledge("dog", attributes=["floppy ears"], analogous=["wolf"],
                       contrasts={"cat": ["wet nose"]}),
        ClassKnowledge("fox", attributes=["bushy tail"]),
    ], domain="generic")


X = [0.6, 0.55, 0.1, 0.5]


def _x() -> list[float]:
    n = math.sqrt(sum(v * v for v in X))
    return [v / n for v in X]


def test_hand_computed_case_with_rerank_change(pets):
    x0, x1, x2, x3 = _x()
    # stage 1 by hand: s_cat = 100 (x0 + max(x0, x1)) / 2 = 100 x0; s_dog = 100 (x1 + x1 + x1) / 3;
    # s_fox = 100 x2  ->  cat wins stage 1 (x0 > x1).
    # rerank over K = 3 (fox has no contrast texts: its pairs add 0 but count in the mean):
    # r_dog = (x3 - x2) / 2 > 0, r_cat = (x2 - x3) / 2 < 0, r_fox = 0  ->  dog wins.
    clf = CoderClassifier(AxisEncoder(), pets, method="coder-rerank", rerank_k=3, tau=1.0,
                          cache=False).fit()
    [out] = clf.explain(embeddings=torch.tensor([X]), k=10)
    assert out["label"] == "dog" and out["stage1_label"] == "cat" and out["rerank_applied"]
    stage1 = [e for e in out["explanation"] if e["type"] != "contrast"]
    contrast = [e for e in out["explanation"] if e["type"] == "contrast"]
    assert {(e["text"], e["type"]) for e in stage1} == {
        ("a photo of a dog.", "name"), ("a photo of a dog, which has floppy ears.", "attribute"),
        ("a photo of a dog, which looks similar to wolf.", "analogous")}
    for e in stage1:
        assert e["class"] == "dog" and "versus" not in e
        assert e["similarity"] == pytest.approx(x1, abs=1e-6)
        assert e["contribution"] == pytest.approx(100 * x1 / 3, abs=1e-4)
    # each side of the pair has 3 template texts (one feature x three contrast templates)
    pro = [e for e in contrast if e["class"] == "dog"]
    con = [e for e in contrast if e["class"] == "cat"]
    assert len(pro) == 3 and len(con) == 3
    for e in pro:
        assert "wet nose" in e["text"] and e["versus"] == "cat"
        assert e["similarity"] == pytest.approx(x3, abs=1e-6)
        assert e["contribution"] == pytest.approx(x3 / (3 * 2), abs=1e-6)
    for e in con:
        assert "pointy snout" in e["text"] and e["versus"] == "dog"
        assert e["similarity"] == pytest.approx(x2, abs=1e-6)
        assert e["contribution"] == pytest.approx(-x2 / (3 * 2), abs=1e-6)
    assert sum(e["contribution"] for e in contrast) == pytest.approx((x3 - x2) / 2, abs=1e-5)
    # best first: the texts in favour of the winner lead the contrast list
    assert [e["class"] for e in contrast] == ["dog"] * 3 + ["cat"] * 3


def test_stage1_shares_sum_to_the_score_and_only_the_best_name_counts(pets):
    x0, x1, *_ = _x()
    clf = CoderClassifier(AxisEncoder(), pets, method="coder", cache=False).fit()
    [out] = clf.explain(embeddings=torch.tensor([X]), k=10)
    assert out["label"] == out["stage1_label"] == "cat" and not out["rerank_applied"]
    texts = [e["text"] for e in out["explanation"]]
    assert "a photo of a kitty." not in texts, "the synonym is not the max: it does not count"
    assert texts == ["a photo of a cat.", "a photo of a cat, which has whiskers."] or \
        texts == ["a photo of a cat, which has whiskers.", "a photo of a cat."]
    score = clf.decision_function(embeddings=torch.tensor([X]))[0, 0]
    assert sum(e["contribution"] for e in out["explanation"]) == pytest.approx(score, abs=1e-3)
    assert score == pytest.approx(100 * x0, abs=1e-3)
    # k bounds the list
    assert len(clf.explain(embeddings=torch.tensor([X]), k=1)[0]["explanation"]) == 1


@pytest.mark.parametrize("method", ["clip", "clip-ensemble", "dclip", "cupl", "cupl-templates", "waffle"])
def test_baseline_shares_sum_to_the_score(pets, method):
    """Every baseline's shares add up to its score of the winning class, the owl's too: it has no
    descriptions, so the description baselines fall back to its name prompt."""
    kn = Knowledge([*pets.classes, ClassKnowledge("owl")], domain="generic")
    clf = CoderClassifier(AxisEncoder(), kn, method=method, cache=False).fit()
    xs = torch.tensor([X, [0.1, 0.2, 0.9, 0.1], [0.1, 0.1, 0.1, 0.9]])
    outs = clf.explain(embeddings=xs, k=100)
    scores = clf.decision_function(embeddings=xs)
    for out, s in zip(outs, scores):
        c = list(clf.classes_).index(out["label"])
        assert out["label"] == clf.classes_[s.argmax()]
        assert sum(e["contribution"] for e in out["explanation"]) == pytest.approx(s[c], abs=1e-3)
    owl = {"clip-ensemble": "ensemble", "cupl-templates": "ensemble", "waffle": "noise"}.get(method, "name")
    assert outs[2]["label"] == "owl" and {e["type"] for e in outs[2]["explanation"]} == {owl}
    if owl == "name":
        assert len(outs[2]["explanation"]) == 1


def test_classify_explain_json(tmp_path, pets, capsys, monkeypatch):
    """``classify --explain --format json`` puts an explanation list on each image."""
    from coderclip.cli import main
    from coderclip.features import FeatureSet, save_features

    kfile = pets.save(tmp_path / "pets.json")
    feats = tmp_path / "feats.safetensors"
    save_features(feats, FeatureSet(embeddings=torch.tensor([X]), ids=["img0"], model="axis-encoder"))
    monkeypatch.setattr("coderclip.encoders.load_encoder", lambda *a, **k: AxisEncoder())
    rc = main(["classify", "--features", str(feats), "-m", "axis", "-k", str(kfile), "--tau", "1",
               "--rerank-k", "3", "--explain", "--format", "json", "--no-cache"])
    assert rc == 0
    [row] = json.loads(capsys.readouterr().out)["results"]
    assert row["predictions"][0]["label"] == "dog"
    expl = row["explanation"]
    assert {e["type"] for e in expl} == {"name", "attribute", "analogous", "contrast"}
    assert all({"text", "type", "similarity", "contribution"} <= set(e) for e in expl)


def test_rerank_that_keeps_the_answer_adds_no_contrasts(pets):
    # dog wins stage 1 (x1 is the largest) and the rerank agrees (r_dog = (x3 - x2) / 2 > 0)
    clf = CoderClassifier(AxisEncoder(), pets, method="coder-rerank", rerank_k=3, tau=1.0,
                          cache=False).fit()
    [out] = clf.explain(embeddings=torch.tensor([[0.5, 0.55, 0.1, 0.5]]), k=10)
    assert out["label"] == out["stage1_label"] == "dog" and out["rerank_applied"]
    assert [e["type"] for e in out["explanation"]].count("contrast") == 0
    assert len(out["explanation"]) == 3


def test_classify_explain_table(tmp_path, pets, capsys, monkeypatch):
    from coderclip.cli import main
    from coderclip.features import FeatureSet, save_features

    kfile = pets.save(tmp_path / "pets.json")
    feats = tmp_path / "feats.safetensors"
    save_features(feats, FeatureSet(embeddings=torch.tensor([X]), ids=["img0"], model="axis-encoder"))
    monkeypatch.setattr("coderclip.encoders.load_encoder", lambda *a, **k: AxisEncoder())
    assert main(["classify", "--features", str(feats), "-m", "axis", "-k", str(kfile), "--tau", "1",
                 "--rerank-k", "3", "--explain", "--top", "2", "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "because:" in out and "(vs cat)" in out and "a photo of a dog, which has floppy ears." in out


def test_classify_explain_jsonl_file_and_csv_refused(tmp_path, pets, capsys, monkeypatch):
    from coderclip.cli import main
    from coderclip.features import FeatureSet, save_features

    kfile = pets.save(tmp_path / "pets.json")
    feats = tmp_path / "feats.safetensors"
    save_features(feats, FeatureSet(embeddings=torch.tensor([X, [0.5, 0.55, 0.1, 0.5]]),
                                    ids=["a", "b"], model="axis-encoder"))
    monkeypatch.setattr("coderclip.encoders.load_encoder", lambda *a, **k: AxisEncoder())
    out = tmp_path / "rows.jsonl"
    args = ["classify", "--features", str(feats), "-m", "axis", "-k", str(kfile), "--tau", "1",
            "--rerank-k", "3", "--explain", "--no-cache"]
    assert main([*args, "--format", "jsonl", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["image"] for r in rows] == ["a", "b"]
    assert [e["type"] for e in rows[0]["explanation"]].count("contrast") > 0     # rerank changed it
    assert [e["type"] for e in rows[1]["explanation"]].count("contrast") == 0    # rerank agreed
    assert main([*args, "--format", "csv"]) == 2
    assert "--explain" in capsys.readouterr().err
