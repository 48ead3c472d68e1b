"""Evaluation: labels read only after predictions, report contents, rerank counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from coderclip.datasets import ImageDataset, from_folder
from coderclip.defaults import DEFAULT_METHODS
from coderclip.evaluation.predict import (ABLATION, METHOD_LABELS, NOISE_ROW, ZeroShotPredictions,
                                         predict_zero_shot)
from coderclip.evaluation.run import evaluate
from coderclip.evaluation.metrics import score_zero_shot
from coderclip.bank.textbank import TEXT_TYPES, TextBank

from .helpers import HashEncoder, random_knowledge


class WatchedDataset(ImageDataset):
    """Records when labels are read, so tests can prove it happens after predicting."""

    events: list

    def labels(self):
        self.events.append("labels")
        return super().labels()


def make_folder_dataset(root, classes, per_class=3, seed=0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in classes:
        d = root / c.replace(" ", "_")
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def test_labels_are_read_only_after_all_predictions(tmp_path, open_clip_encoder, small_knowledge, monkeypatch):
    from coderclip.evaluation.predict import ZeroShotPredictor

    root = make_folder_dataset(tmp_path / "data", ["lime", "lemon", "orange"])
    base = from_folder(root)
    ds = WatchedDataset(base.name, base.class_names, base.paths, base._labels)
    ds.events = []
    real = ZeroShotPredictor.result

    def spy(self):
        out = real(self)
        ds.events.append("predicted")
        return out

    monkeypatch.setattr(ZeroShotPredictor, "result", spy)
    report = evaluate(open_clip_encoder, small_knowledge, ds, num_workers=0)
    assert ds.events == ["predicted", "labels"]
    assert report["n_images"] == 9
    assert list(report["methods"]) == list(DEFAULT_METHODS)
    assert list(report["ablation"]) == [*ABLATION, "+rerank", NOISE_ROW[0]]
    assert len(report["per_class"]) == 3 and report["per_class"][0]["images"] == 3
    prov = report["provenance"]
    assert prov["model"]["identity"] == open_clip_encoder.identity
    assert prov["knowledge"]["content_sha256"] and prov["templates_version"]
    assert prov["labels_read_after_predictions"] is True
    for row in report["rerank"]["tau_sweep"]:
        assert 0 <= row["top1"] <= 100


def test_unreadable_images_are_skipped_and_listed(tmp_path, open_clip_encoder, small_knowledge):
    root = make_folder_dataset(tmp_path / "data", ["lime", "lemon", "orange"])
    (root / "lime" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    report = evaluate(open_clip_encoder, small_knowledge, from_folder(root), num_workers=0)
    assert report["n_images"] == 9
    assert [s["path"] for s in report["skipped_images"]] == [str(root / "lime" / "broken.jpg")]


def test_rerank_counts_on_a_known_case():
    n = 6
    labels = np.array([0, 0, 1, 1, 2, 2])
    stage1 = np.array([0, 1, 1, 2, 2, 0])
    final = np.array([0, 0, 2, 1, 1, 2])
    reranked = np.array([False, True, True, True, True, True])
    ranking = {m: np.stack([final, (final + 1) % 3, (final + 2) % 3], 1) for m in METHOD_LABELS}
    preds = ZeroShotPredictions(ranking=ranking, stage1=stage1, reranked=reranked,
                                tau_sweep={0.0: stage1, 1.0: final}, k_sweep={5: final}, tau=0.5, top_k=5)
    rep = score_zero_shot(preds, labels, ["a", "b", "c"])
    rr = rep["rerank"]
    # sample 1: 1 -> 0 wrong->right; 2: 1 -> 2 right->wrong; 3: 2 -> 1 wrong->right;
    # 4: 2 -> 1 right->wrong; 5: 0 -> 2 wrong->right
    assert (rr["reranked"], rr["changed"]) == (5, 5)
    assert (rr["wrong_to_right"], rr["right_to_wrong"], rr["wrong_to_wrong"]) == (3, 2, 0)
    assert rr["tau_sweep"][0] == {"tau": 0.0, "top1": 50.0}
    assert rr["tau_sweep"][1]["top1"] == rep["methods"]["coder-rerank"]["top1"] == pytest.approx(100 * 4 / 6)
    assert rep["methods"]["coder-rerank"]["top5"] == 100.0
    assert rep["confused_pairs"][0]["count"] == 1 and n == len(labels)


def test_predictions_stream_in_batches_identically():
    kn = random_knowledge(12, seed=2)
    bank = TextBank.build(kn, HashEncoder(16), types=TEXT_TYPES, cache=False)
    x = torch.nn.functional.normalize(torch.randn(50, 16, generator=torch.Generator().manual_seed(0)), dim=1)
    a = predict_zero_shot(x, bank, batch_size=7)
    b = predict_zero_shot(x, bank, batch_size=1000)
    for m in a.ranking:
        assert np.array_equal(a.ranking[m], b.ranking[m])
    assert all(np.array_equal(a.tau_sweep[t], b.tau_sweep[t]) for t in a.tau_sweep)
    # tau = 0 never reranks, tau = 1 reranks all but fully confident samples
    assert np.array_equal(a.tau_sweep[0.0], a.stage1)


def test_a_killed_evaluation_resumes_from_the_finished_shards(tmp_path, monkeypatch):
    from coderclip import feature_cache
    from coderclip.paths import cache_dir

    from .helpers import CountingEncoder, Killed

    monkeypatch.setattr(feature_cache, "SHARD_IMAGES", 2)
    kn = random_knowledge(3, seed=1)
    ds = from_folder(make_folder_dataset(tmp_path / "data", kn.class_names))   # 9 images
    reference = evaluate(HashEncoder(), kn, ds, cache=False, num_workers=0, batch_size=1)
    assert not (cache_dir() / "features").exists()

    with pytest.raises(Killed):   # images 0 to 4 embedded: shards [0 1] and [2 3] finished
        evaluate(CountingEncoder(fail_after=5), kn, ds, num_workers=0, batch_size=1)
    (folder,) = (cache_dir() / "features").iterdir()
    assert sorted(p.name for p in folder.glob("shard-*")) == ["shard-00000.safetensors", "shard-00001.safetensors"]

    resumed = CountingEncoder()
    report = evaluate(resumed, kn, ds, num_workers=0, batch_size=1)
    assert resumed.image_calls == 5   # images 4 to 8 only
    for part in ("n_images", "methods", "ablation", "rerank", "per_class", "skipped_images"):
        assert report[part] == reference[part], part
    assert report["provenance"]["labels_read_after_predictions"] is True
    again = CountingEncoder()
    assert evaluate(again, kn, ds, num_workers=0)["methods"] == reference["methods"]
    assert again.image_calls == 0


def test_evaluate_with_its_own_image_batches_bypasses_the_feature_cache(tmp_path):
    from coderclip.images import iter_encoded_batches
    from coderclip.paths import cache_dir

    kn = random_knowledge(3, seed=1)
    ds = from_folder(make_folder_dataset(tmp_path / "data", kn.class_names))
    calls = []

    def remote(*a, **kw):   # stands for the Ray engine
        calls.append(1)
        yield from iter_encoded_batches(*a, **kw)

    first = evaluate(HashEncoder(), kn, ds, num_workers=0, encoded_batches=remote)
    second = evaluate(HashEncoder(), kn, ds, num_workers=0, encoded_batches=remote)
    assert len(calls) == 2 and first["methods"] == second["methods"]
    assert not (cache_dir() / "features").exists()
