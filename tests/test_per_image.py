"""Per-image predictions (streamed CSV / Parquet, labels added after predictions), mean per-class
recall, and confusion statistics that never build a C × C table."""

from __future__ import annotations

import collections
import csv
import json
import tracemalloc

import numpy as np
import pytest
import torch

from coderclip.classifier import CoderClassifier
from coderclip.cli import main
from coderclip.errors import ConfigError
from coderclip.evaluation.metrics import confused_pairs, mean_per_class_recall
from coderclip.evaluation.per_image import MethodRanker, PerImagePredictions
from coderclip.evaluation.run import evaluate
from coderclip.bank.textbank import TEXT_TYPES, TextBank

from .test_evaluation import make_folder_dataset


def _read(path):
    if ".csv" in str(path):
        with open(path, newline="") as f:
            return list(csv.DictReader(f))
    import pyarrow.parquet as pq

    return pq.read_table(str(path)).to_pylist()


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_evaluate_writes_per_image_predictions(tmp_path, open_clip_encoder, small_knowledge, suffix):
    root = make_folder_dataset(tmp_path / "data", ["lime", "lemon", "orange"])
    out = tmp_path / f"pred{suffix}"
    methods = ["clip", "clip-ensemble", "dclip", "cupl", "waffle", "coder", "coder-rerank"]
    report = evaluate(open_clip_encoder, small_knowledge, str(root), num_workers=0,
                      predictions=out, predictions_k=3, methods=methods)
    rows = _read(out)
    assert len(rows) == report["n_images"] == 9
    assert not (tmp_path / f"pred{suffix}.partial").exists()
    assert [r["path"] for r in rows] == sorted(str(p) for p in root.rglob("*.png"))
    assert [r["true_label"] for r in rows] == [p.parent.name for p in sorted(root.rglob("*.png"))]
    x = open_clip_encoder.encode_images([__import__("PIL.Image", fromlist=["x"]).open(r["path"])
                                         for r in rows])
    assert {c.split(".")[0] for c in rows[0] if "." in c} == set(methods)
    for method in methods:
        clf = CoderClassifier(open_clip_encoder, small_knowledge.align(["lemon", "lime", "orange"]),
                              method=method).fit()
        idx, p = clf.top_k(embeddings=x, k=3)
        assert [r[f"{method}.label1"] for r in rows] == list(clf.classes_[idx[:, 0]]), method
        got = np.array([[float(r[f"{method}.score{k}"]) for k in (1, 2, 3)] for r in rows])
        np.testing.assert_allclose(got, p, atol=2e-6)
    top1 = np.mean([r["coder-rerank.label1"] == r["true_label"] for r in rows]) * 100
    assert report["methods"]["coder-rerank"]["top1"] == pytest.approx(top1)


def test_no_readable_image_leaves_no_predictions_file(tmp_path, open_clip_encoder, small_knowledge):
    from coderclip.errors import DatasetError

    root = tmp_path / "data"
    for c in ("lime", "lemon", "orange"):
        (root / c).mkdir(parents=True)
        (root / c / "0.png").write_bytes(b"not an image")
    with pytest.raises(DatasetError, match="could be read"):
        evaluate(open_clip_encoder, small_knowledge, str(root), num_workers=0, cache=False,
                 predictions=tmp_path / "pred.csv")
    assert list(tmp_path.glob("pred.csv*")) == []


def test_rows_stream_and_labels_come_last(tmp_path, open_clip_encoder, small_knowledge):
    bank = TextBank.build(small_knowledge, open_clip_encoder, types=TEXT_TYPES, cache=False)
    sink = PerImagePredictions(tmp_path / "p.csv", MethodRanker(bank, k=2), bank.class_names,
                               (f"img{i}.png" for i in range(7)))
    x = torch.nn.functional.normalize(torch.randn(7, open_clip_encoder.embed_dim), dim=1)
    sink.add(x[:4])
    partial = _read(tmp_path / "p.csv.partial")
    assert len(partial) == 4 and "true_label" not in partial[0]   # no label before predictions end
    sink.add(x[4:])
    with pytest.raises(ConfigError, match="3 labels for 7"):
        sink.close(np.array([0, 1, 2]))
    sink = PerImagePredictions(tmp_path / "q.csv", MethodRanker(bank, k=5), bank.class_names,
                               (f"img{i}.png" for i in range(7)))
    sink.add(x)
    rows = _read(sink.close(np.array([0, 1, 2, 0, 1, 2, 0])))
    assert [r["true_label"] for r in rows] == ["lime", "lemon", "orange", "lime", "lemon", "orange", "lime"]
    assert rows[0]["clip.label4"] == ""   # 3 classes: ranks beyond them are empty
    with pytest.raises(ConfigError, match=r"\.csv or \.parquet"):
        PerImagePredictions(tmp_path / "p.txt", MethodRanker(bank), bank.class_names, [])


def test_mean_per_class_recall_by_hand():
    labels = np.array([0, 0, 0, 0, 1, 2, 2])
    pred = np.array([0, 0, 0, 0, 0, 2, 1])
    # class 0: 4/4, class 1: 0/1, class 2: 1/2; class 3 has no image and does not count
    assert mean_per_class_recall(pred, labels, 4) == pytest.approx((1 + 0 + 0.5) / 3 * 100)
    assert (pred == labels).mean() * 100 == pytest.approx(5 / 7 * 100)


def test_confused_pairs_match_a_direct_count_and_stay_small_at_21k_classes():
    rng = np.random.default_rng(0)
    C = 50
    labels, pred = rng.integers(0, C, 3000), rng.integers(0, C, 3000)
    names = [f"c{i}" for i in range(C)]
    counts = collections.Counter((int(t), int(p)) for t, p in zip(labels, pred) if t != p)
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert [(names.index(d["true"]), names.index(d["predicted"]), d["count"])
            for d in confused_pairs(pred, labels, names)] == [(t, p, n) for (t, p), n in expected]
    C = 21_000
    names = [f"c{i}" for i in range(C)]
    labels, pred = rng.integers(0, C, 100_000), rng.integers(0, C, 100_000)
    tracemalloc.start()
    out = confused_pairs(pred, labels, names)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(out) == 10
    assert peak < 50 * 2**20   # a C × C int64 table alone would be 3.5 GB


@pytest.mark.slow
def test_evaluate_cli_writes_report_chart_and_predictions(tmp_path, open_clip_spec, small_knowledge, capsys):
    root = make_folder_dataset(tmp_path / "data", ["lime", "lemon", "orange"])
    kfile = tmp_path / "k.json"
    small_knowledge.save(kfile)
    assert main(["evaluate", str(root), "-m", open_clip_spec, "--device", "cpu", "-k", str(kfile),
                 "--workers", "0", "-o", str(tmp_path / "r.json"),
                 "--predictions", str(tmp_path / "p.csv")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert all("mean_per_class_recall" in m for m in report["methods"].values())
    assert (tmp_path / "r.confused.png").stat().st_size > 0
    assert len(_read(tmp_path / "p.csv")) == 9
    assert "mean per-class recall" in capsys.readouterr().out
    assert main(["evaluate", str(root), "-m", open_clip_spec, "-k", str(kfile),
                 "--predictions", str(tmp_path / "p.json")]) == 2
    assert ".csv or .parquet" in capsys.readouterr().err


def test_prediction_keys_new_and_old():
    from coderclip.rows import prediction_row, read_prediction

    row = prediction_row("a.jpg", ["cat", "dog"], [0.75, 0.25])
    assert row["predictions"][0] == {"label": "cat", "score": 0.75}
    assert read_prediction(row["predictions"][1]) == ("dog", 0.25)
    assert read_prediction({"class": "cat", "probability": 0.5}) == ("cat", 0.5)


@pytest.mark.slow
def test_classify_does_not_resume_a_file_with_the_old_keys(tmp_path, open_clip_spec, image_files, capsys):
    classes = tmp_path / "classes.txt"
    classes.write_text("apple\npear\n")
    out = tmp_path / "out.jsonl"
    argv = ["classify", str(image_files["png"]), "-m", open_clip_spec, "--device", "cpu",
            "--classes", str(classes), "--format", "jsonl", "-o", str(out)]
    assert main(argv) == 0
    record = json.loads((tmp_path / "out.jsonl.run.json").read_text())
    assert record["settings"]["rows"] == "label,score" and "+custom" not in record["settings"]["templates"]
    assert json.loads(out.read_text().splitlines()[0])["predictions"][0].keys() == {"label", "score"}
    del record["settings"]["rows"]          # as written by a version with class/probability keys
    record["complete"] = False
    (tmp_path / "out.jsonl.run.json").write_text(json.dumps(record))
    assert main(argv) == 2
    assert "other settings" in capsys.readouterr().err


def test_summary_shows_the_recall_column_only_when_a_method_has_it():
    from coderclip.reports.tables import format_summary

    report = {"dataset": {"name": "d", "classes": 2}, "n_images": 4,
              "methods": {"clip": {"label": "CLIP", "top1": 50.0, "top5": 100.0}}}
    assert "recall" not in format_summary(report)            # e.g. the demo's means over seeds
    report["methods"]["clip"]["mean_per_class_recall"] = 50.0
    assert "mean per-class recall %" in format_summary(report)
