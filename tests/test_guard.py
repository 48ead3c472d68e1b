"""The honest flags are measured by a label guard: they turn false when labels leak early."""

from __future__ import annotations

import numpy as np
import pytest

from coderclip.datasets import Labels, from_folder
from coderclip.evaluation.guard import LabelGuard
from coderclip.evaluation.run import evaluate

from .fewshot.test_protocol import fake_data  # noqa: F401  (fixture)
from .test_evaluation import make_folder_dataset


def test_guard_records_reads_against_the_final_point():
    src = Labels([0, 1, 1])
    src.labels()                        # before the guard: not this run's business
    g = LabelGuard(src)
    assert not g.honest()               # nothing final, nothing read
    g.final()
    assert not g.honest()               # final, but labels never read
    src.labels()
    assert g.honest()

    early = Labels([0, 1])
    g = LabelGuard(early)
    early.labels()                      # read before predictions are final
    g.final()
    early.labels()
    assert not g.honest()


def test_guard_watches_every_source():
    a, b = Labels([0]), Labels([1])
    g = LabelGuard(a, b)
    b.labels()
    g.final()
    a.labels()
    assert not g.honest()


@pytest.fixture
def citrus(tmp_path):
    return from_folder(make_folder_dataset(tmp_path / "data", ["lime", "lemon", "orange"]))


def test_evaluate_records_an_honest_run(citrus, open_clip_encoder, small_knowledge):
    report = evaluate(open_clip_encoder, small_knowledge, citrus, num_workers=0)
    assert report["provenance"]["labels_read_after_predictions"] is True


def test_evaluate_records_a_leak(citrus, open_clip_encoder, small_knowledge, monkeypatch):
    from coderclip.evaluation.predict import ZeroShotPredictor

    real = ZeroShotPredictor.add

    def leaky_add(self, xb):            # a scorer that peeks at the labels while predicting
        citrus.labels()
        return real(self, xb)

    monkeypatch.setattr(ZeroShotPredictor, "add", leaky_add)
    report = evaluate(open_clip_encoder, small_knowledge, citrus, num_workers=0)
    assert report["provenance"]["labels_read_after_predictions"] is False


def test_benchmark_records_a_leak(tmp_path, open_clip_encoder, open_clip_spec, monkeypatch):
    from coderclip.datasets import load
    from coderclip.evaluation.predict import ZeroShotPredictor
    from coderclip.evaluation.suite import BenchmarkDataset, run_benchmark

    from .datasets import fakes
    from .test_benchmark import small_knowledge as knowledge_for

    exp = fakes.eurosat(tmp_path / "eurosat")
    kfile = tmp_path / "k.json"
    knowledge_for(exp.names, domain="satellite").save(kfile)
    specs = [BenchmarkDataset("eurosat", str(tmp_path / "eurosat"), str(kfile))]
    kw = dict(num_workers=0, encoders={open_clip_spec: open_clip_encoder})
    report = run_benchmark(specs, [open_clip_spec], **kw)
    assert report["provenance"]["labels_read_after_predictions"] is True
    assert report["runs"][0]["provenance"]["labels_read_after_predictions"] is True

    opened = []

    def remember(*a, **k):
        ds = load(*a, **k)
        opened.append(ds)
        return ds

    real_add = ZeroShotPredictor.add

    def leaky_add(self, xb):            # a scorer that peeks at the test labels while predicting
        opened[0].labels()              # the test split is opened first (then val, for τ and K)
        return real_add(self, xb)

    monkeypatch.setattr("coderclip.evaluation.suite.load_dataset", remember)
    monkeypatch.setattr(ZeroShotPredictor, "add", leaky_add)
    report = run_benchmark(specs, [open_clip_spec], **kw)
    assert report["runs"][0]["provenance"]["labels_read_after_predictions"] is False
    assert report["provenance"]["labels_read_after_predictions"] is False


def test_fewshot_records_a_leak(fake_data, open_clip_encoder, small_knowledge, monkeypatch):
    import coderclip.fewshot.protocol as protocol
    from coderclip.fewshot import Augmentation, folder_splits, run_fewshot

    train, val, test = folder_splits(fake_data)
    kw = dict(shots=(1,), seeds=(1,), augmentation=Augmentation(views=1), num_workers=0)
    report = run_fewshot(open_clip_encoder, small_knowledge, train, val, test, **kw)
    assert report["provenance"]["test_labels_read_after_hyperparameters"] is True

    real = protocol.predict_fewshot

    def leaky(*a, **k):                 # hyper-parameters chosen with the test labels in view
        test.labels()
        return real(*a, **k)

    monkeypatch.setattr(protocol, "predict_fewshot", leaky)
    report = run_fewshot(open_clip_encoder, small_knowledge, train, val, test, **kw)
    assert report["provenance"]["test_labels_read_after_hyperparameters"] is False
    assert report["provenance"]["labels_read_after_predictions"] is False
