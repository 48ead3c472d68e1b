"""``coderclip benchmark`` end to end with a tiny randomly initialised open_clip model: a fake
standard dataset through the CLI, the real foolbox sample photos through the API, every report
field, the charts, the feature cache on a second run, and label hygiene."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from coderclip.evaluation.suite import BENCHMARK_FORMAT, BENCHMARK_VERSION, BenchmarkDataset, resolve_knowledge, run_benchmark
from coderclip.evaluation.provenance import weights_record
from coderclip.reports.benchmark import write_benchmark
from coderclip.cli import main
from coderclip.defaults import DEFAULT_METHODS
from coderclip.evaluation.predict import ABLATION, METHOD_LABELS
from coderclip.knowledge import ClassKnowledge, Knowledge
from coderclip._io import file_sha256

from .datasets import fakes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CIFAR10_RAW = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def small_knowledge(names, domain="generic", name="small") -> Knowledge:
    """A few texts of every type for each class; contrasts with both neighbours (so both ways)."""
    classes = []
    for i, n in enumerate(names):
        nxt, prev = names[(i + 1) % len(names)], names[i - 1]
        classes.append(ClassKnowledge(
            n, synonyms=[f"{n} picture"], attributes=[f"a {n} shape", f"a {n} colour"],
            analogous=[f"a toy {n}"], contrasts={nxt: [f"{n} texture"], prev: [f"{n} outline"]}))
    return Knowledge(classes, domain=domain, name=name)


def assert_png(path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= 300 and im.size[1] >= 100
        assert len(set(np.asarray(im.convert("L")).ravel().tolist())) > 2  # something is drawn


def check_run(run: dict, *, n_images: int, n_classes: int) -> None:
    """Every field of one run, and the consistency between them."""
    assert set(run) >= {"dataset", "model", "knowledge", "protocol", "features", "skipped_images",
                        "n_images", "methods", "ablation", "rerank", "per_class", "confused_pairs",
                        "provenance"}
    assert run["n_images"] == n_images and run["dataset"]["classes"] == n_classes
    assert run["dataset"]["split"] == "test" and run["protocol"]["test_split"] == "test"
    assert list(run["methods"]) == list(DEFAULT_METHODS)
    for m, v in run["methods"].items():
        assert v["label"] == METHOD_LABELS[m] and 0 <= v["top1"] <= v["top5"] <= 100
        for top1 in v.get("top1_per_seed", [v["top1"]]):  # WaffleCLIP: one run per seed
            assert top1 * n_images / 100 == pytest.approx(round(top1 * n_images / 100))
    assert run["methods"]["waffle"]["top1"] == pytest.approx(np.mean(run["methods"]["waffle"]["top1_per_seed"]))
    assert list(run["ablation"]) == [*ABLATION, "+rerank", "P+Noise"]
    assert run["ablation"]["+rerank"] == run["methods"]["coder-rerank"]["top1"]
    assert run["ablation"]["P+Att+Ana+Syn"] == run["methods"]["coder"]["top1"]
    rr = run["rerank"]
    assert rr["tau"] == run["protocol"]["tau"] and rr["top_k"] == run["protocol"]["top_k"]
    assert 0 <= rr["changed"] <= rr["reranked"] <= n_images
    assert rr["changed"] == rr["wrong_to_right"] + rr["right_to_wrong"] + rr["wrong_to_wrong"]
    delta = (rr["wrong_to_right"] - rr["right_to_wrong"]) * 100 / n_images
    assert run["methods"]["coder-rerank"]["top1"] - run["methods"]["coder"]["top1"] == pytest.approx(delta)
    taus = [s["tau"] for s in rr["tau_sweep"]]
    assert taus == sorted(taus) and rr["tau"] in taus
    at_tau = next(s["top1"] for s in rr["tau_sweep"] if s["tau"] == rr["tau"])
    assert at_tau == pytest.approx(run["methods"]["coder-rerank"]["top1"])
    assert rr["tau_sweep"][0]["tau"] == 0 and rr["tau_sweep"][0]["top1"] == pytest.approx(
        run["methods"]["coder"]["top1"])  # τ = 0 reranks nothing
    assert [s["top_k"] for s in rr["k_sweep"]] == [2, 3, 5, 10]
    assert len(run["per_class"]) == n_classes
    assert sum(p["images"] for p in run["per_class"]) == n_images
    wrong = round((100 - run["methods"]["coder-rerank"]["top1"]) * n_images / 100)
    assert sum(p["count"] for p in run["confused_pairs"]) <= wrong
    prov = run["provenance"]
    for key in ("coderclip_version", "model", "knowledge", "templates_version", "seed", "weights",
                "text_bank", "labels_read_after_predictions"):
        assert key in prov, key
    assert prov["labels_read_after_predictions"] is True


def test_benchmark_cli_on_fake_dataset(tmp_path, open_clip_spec, open_clip_dir, capsys):
    exp = fakes.eurosat(tmp_path / "eurosat")
    kfile = tmp_path / "eurosat-knowledge.json"
    small_knowledge(exp.names, domain="satellite", name="eurosat-small").save(kfile)
    out = tmp_path / "out"
    argv = ["benchmark", "--dataset", "eurosat", "--root", str(tmp_path / "eurosat"),
            "--model", open_clip_spec, "--knowledge", str(kfile), "--tau-from", "val",
            "--k-from", "val", "--device", "cpu", "--workers", "0", "--seed", "7", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "eurosat / " in printed and "report written to" in printed

    report = json.loads((out / "report.json").read_text())
    assert report["format"] == BENCHMARK_FORMAT and report["version"] == BENCHMARK_VERSION
    assert report["settings"]["tau_from"] == "val" and report["settings"]["k_from"] == "val"
    assert report["settings"]["seed"] == 7 and report["provenance"]["seed"] == 7
    assert set(report["provenance"]) >= {"coderclip_version", "templates_version", "torch_version",
                                         "python", "command", "labels_read_after_predictions"}
    (model,) = report["models"]
    weights = open_clip_dir / "local" / "open_clip_model.safetensors"
    assert model["spec"] == open_clip_spec and model["identity"].startswith("open_clip|local-dir|sha256:")
    assert {"path": str(weights.resolve()), "sha256": file_sha256(weights)} in [
        {"path": str(__import__("pathlib").Path(f["path"]).resolve()), "sha256": f["sha256"]}
        for f in model["files"]]
    (ds,) = report["datasets"]
    assert ds == {"name": "eurosat", "loader": "eurosat", "root": str(tmp_path / "eurosat"),
                  "knowledge": str(kfile), "knowledge_file": str(kfile),
                  "knowledge_sha256": file_sha256(kfile), "test_images": 10, "val_images": 10,
                  "classes": 10, "domain": "satellite"}
    (run,) = report["runs"]
    check_run(run, n_images=10, n_classes=10)
    (pfile,) = (out / "predictions").glob("*.csv")          # per-image rows, labels added last
    assert run["predictions_file"] == str(pfile)
    import csv

    rows = list(csv.DictReader(pfile.open()))
    assert len(rows) == 10 and all(r["true_label"] for r in rows)
    assert sum(r["coder-rerank.label1"] == r["true_label"] for r in rows) == \
        round(run["methods"]["coder-rerank"]["top1"] / 10)
    assert run["dataset"]["domain"] == "satellite" and run["knowledge"]["domain"] == "satellite"
    assert run["provenance"]["knowledge"]["file"]["sha256"] == file_sha256(kfile)
    assert run["provenance"]["seed"] == 7
    p = run["protocol"]
    assert p["tau_source"] == "val" and p["top_k_source"] == "val"
    sel = p["selection"]
    assert sel["split"] == "val" and sel["images"] == 10 and "CoOp" in sel["split_description"]
    assert len(sel["grid"]) == len(report["settings"]["taus"]) * len(report["settings"]["ks"])
    best = max(g["top1"] for g in sel["grid"])
    assert sel["top1"] == best and (p["tau"], p["top_k"]) in [(g["tau"], g["top_k"]) for g in sel["grid"]
                                                              if g["top1"] == best]
    assert not run["features"]["cache_hit"] and run["features"]["key"]["split"] == "test"
    assert len(report["summary"]) == len(DEFAULT_METHODS)
    assert {r["method"] for r in report["summary"]} == set(DEFAULT_METHODS)

    charts = report["charts"]
    assert set(charts) == {"accuracy", "ablation", "tau_sweep", f"confused-eurosat-{_slug(open_clip_spec)}"}
    for rel in charts.values():
        assert_png(out / rel)
    md = (out / "report.md").read_text()
    for needle in ("# coderclip benchmark", "## Top-1 accuracy", "## Ablation ladder", "## Rerank",
                   "## Selection on the validation split", "## Most confused", "## Provenance",
                   "| eurosat |", open_clip_spec, "(val)", "![accuracy](charts/accuracy.png)",
                   file_sha256(kfile)[:16]):
        assert needle in md, needle

    # second run: image features come from the cache, numbers are identical
    assert main(argv[:-1] + [str(tmp_path / "out2"), "--no-charts"]) == 0
    assert not (tmp_path / "out2" / "charts").exists()
    again = json.loads((tmp_path / "out2" / "report.json").read_text())["runs"][0]
    assert again["features"]["cache_hit"] and again["features"]["file"] == run["features"]["file"]
    assert again["methods"] == run["methods"] and again["rerank"] == run["rerank"]


def _slug(text):
    from coderclip._io import slug

    return slug(text)


def test_benchmark_on_sample_photos(tmp_path, sample_photos, open_clip_encoder, open_clip_spec):
    """The real foolbox photos: CIFAR-10 ones as a CIFAR-10 image-folder export, ImageNet ones
    through a CSV manifest; two datasets in one report."""
    from coderclip.datasets.imagenet import imagenet_class_names

    export = tmp_path / "cifar10"
    for name in CIFAR10_RAW:  # the 20 photos cover 8 of the 10 classes
        (export / "test" / name).mkdir(parents=True)
    for f in sorted(sample_photos.glob("cifar10_*.png")):
        label = int(f.stem.split("_")[-1])
        dst = export / "test" / CIFAR10_RAW[label] / f.name
        shutil.copy(f, dst)
    inet = imagenet_class_names()
    rows = ["path,label"] + [f"{f},{inet[int(f.stem.split('_')[-1])]}"
                             for f in sorted(sample_photos.glob("imagenet_*"))]
    manifest = tmp_path / "imagenet_sample.csv"
    manifest.write_text("\n".join(rows) + "\n")

    from coderclip.datasets import LOADERS

    cifar_names = LOADERS["cifar10"](export).class_names
    kfile = tmp_path / "cifar10-small.json"
    small_knowledge(cifar_names, name="cifar10-small").save(kfile)
    report = run_benchmark([BenchmarkDataset("cifar10", str(export), str(kfile)),
                            BenchmarkDataset("csv", str(manifest))],
                           [open_clip_spec], num_workers=0, seed=3,
                           encoders={open_clip_spec: open_clip_encoder})
    paths = write_benchmark(report, tmp_path / "out")
    cifar_run, inet_run = report["runs"]
    check_run(cifar_run, n_images=20, n_classes=10)
    n_inet = len(rows) - 1
    check_run(inet_run, n_images=n_inet, n_classes=len(set(r.rsplit(",", 1)[1] for r in rows[1:])))
    assert cifar_run["protocol"]["tau_source"] == "fixed" and cifar_run["protocol"]["selection"] is None
    assert inet_run["knowledge"]["file"] is None and "class names only" in inet_run["knowledge"]["source"]
    assert inet_run["knowledge"]["counts"]["attributes"] == 0
    assert inet_run["rerank"]["reranked"] >= 0 and inet_run["rerank"]["changed"] == 0  # no ovo texts
    assert {d["name"] for d in report["datasets"]} == {"cifar10", "imagenet_sample"}
    saved = json.loads(paths["json"].read_text())
    assert saved["runs"][0]["methods"] == cifar_run["methods"] and saved["charts"] == report["charts"]
    assert len([k for k in paths if k.startswith("chart:")]) == 5  # 3 overview + 2 confusion charts
    for k, p in paths.items():
        if k.startswith("chart:"):
            assert_png(p)
    md = paths["markdown"].read_text()
    assert "| cifar10 |" in md and "| imagenet_sample |" in md


def test_labels_are_read_only_after_predictions(tmp_path, open_clip_encoder, open_clip_spec, monkeypatch):
    from coderclip.datasets import ImageDataset
    from coderclip.evaluation.predict import ZeroShotPredictor

    exp = fakes.eurosat(tmp_path / "eurosat")
    kfile = tmp_path / "k.json"
    small_knowledge(exp.names, domain="satellite").save(kfile)
    events = []
    real_result, real_labels = ZeroShotPredictor.result, ImageDataset.labels

    def result(self):
        out = real_result(self)
        events.append(("predict", len(out.stage1)))
        return out

    def labels(self):
        events.append(("labels", self.split))
        return real_labels(self)

    monkeypatch.setattr(ZeroShotPredictor, "result", result)
    monkeypatch.setattr(ImageDataset, "labels", labels)
    run_benchmark([BenchmarkDataset("eurosat", str(tmp_path / "eurosat"), str(kfile))],
                  [open_clip_spec], tau_from="val", k_from="val", ks=(2, 3), taus=(0.0, 0.5),
                  num_workers=0, encoders={open_clip_spec: open_clip_encoder})
    # val: one prediction per K, then its labels; test: one prediction, then its labels
    assert events == [("predict", 10), ("predict", 10), ("labels", "val"),
                      ("predict", 10), ("labels", "test")]


def test_default_knowledge_is_the_shipped_pack(tmp_path):
    from coderclip.knowledge.packs import has_pack, pack_path

    exp = fakes.dtd_coop(tmp_path / "dtd")
    from coderclip.datasets import LOADERS

    ds = LOADERS["dtd"](exp.root)
    kn, kfile, source = resolve_knowledge(None, ds, pack_name="dtd")
    assert has_pack("dtd") and kfile == str(pack_path("dtd")) and source == "dtd"
    assert kn.class_names == ds.class_names and kn.counts()["attributes"] > 0
    kn, kfile, source = resolve_knowledge(None, ds, pack_name="folder")
    assert kfile is None and kn.domain == "texture" and kn.counts()["attributes"] == 0


def test_weights_record_hashes_local_checkpoints(open_clip_encoder, open_clip_dir):
    rec = weights_record(open_clip_encoder)
    f = open_clip_dir / "local" / "open_clip_model.safetensors"
    assert rec["identity"] == open_clip_encoder.identity
    assert [x["sha256"] for x in rec["files"]] == [file_sha256(f)]


def test_cli_errors_are_one_line(tmp_path, capsys, open_clip_spec):
    base = ["benchmark", "--model", open_clip_spec, "--out", str(tmp_path / "o")]
    assert main(base + ["--dataset", "dtd", "--dataset", "eurosat", "--root", str(tmp_path)]) == 2
    assert "2 --dataset but 1 --root" in capsys.readouterr().err
    assert main(base + ["--dataset", "nope", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'nope'" in err and "food101" in err
    assert main(base + ["--dataset", "food101", "--root", str(tmp_path / "absent")]) == 3  # input path
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Food-101" in err and "split_zhou_Food101.json" in err
