"""The few-shot protocol end to end on a tiny fake dataset: the report, the files, the CLI, and
the guarantee that the test labels are read once, after every α and β is fixed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from coderclip.datasets import ImageDataset
from coderclip.fewshot import Augmentation, folder_splits, run_fewshot, write_report
from coderclip.fewshot import adapters as adapters_module
from coderclip.fewshot.report import format_summary

from ..helpers import HashEncoder

CLASSES = {"lime": (60, 180, 40), "lemon": (240, 220, 40), "orange": (250, 140, 20)}
COUNTS = {"train": 5, "val": 4, "test": 3}


@pytest.fixture(scope="module")
def fake_data(tmp_path_factory):
    """root/{train,val,test}/{lime,lemon,orange}/*.png: noisy images of each class's colour."""
    root = tmp_path_factory.mktemp("citrus")
    rng = np.random.default_rng(0)
    for split, n in COUNTS.items():
        for name, colour in CLASSES.items():
            d = root / split / name
            d.mkdir(parents=True)
            for i in range(n):
                px = np.clip(np.array(colour) + rng.normal(0, 30, (36, 44, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(px).save(d / f"{i}.png")
    return root


@pytest.fixture
def knowledge_file(small_knowledge, tmp_path):
    path = tmp_path / "citrus.json"
    small_knowledge.save(path)
    return path


def test_end_to_end_with_a_tiny_random_model(fake_data, small_knowledge, open_clip_encoder, tmp_path):
    train, val, test = folder_splits(fake_data)
    assert [d.split for d in (train, val, test)] == ["train", "val", "test"]
    report = run_fewshot(open_clip_encoder, small_knowledge, train, val, test, shots=(2, 1),
                         seeds=(1, 2), augmentation=Augmentation(views=2), num_workers=0)
    assert report["protocol"]["shots"] == [1, 2] and report["n_test_images"] == 9
    assert report["protocol"]["zero_shot_classifier"] == "template ensemble"
    assert report["protocol"]["coder_axes"]["texts"] == 3 + 6 + 4   # names, attributes, analogous
    assert 0 <= report["zero_shot"]["top1"] <= 100
    for method in ("tip-adapter", "coder-adapter"):
        for setting in ("tuned", "fixed"):
            for k in ("1", "2"):
                stat = report["methods"][method]["settings"][setting][k]
                assert len(stat["per_seed"]) == 2 and stat["std"] is not None
                assert stat["mean"] == pytest.approx(np.mean(stat["per_seed"]))
    assert len(report["runs"]) == 2 * 2 * 2
    for run in report["runs"]:
        assert run["val_images"] == 3 * min(run["shots"], 4)
        assert run["support_images"] == 3 * run["shots"]
        assert run["val_top1"] >= run["zero_shot_val_top1"]      # α = 0 is in the grid
    assert report["provenance"]["test_labels_read_after_hyperparameters"] is True
    paths = write_report(report, tmp_path / "out")
    assert json.loads(paths["json"].read_text())["format"] == "coderclip-fewshot-report"
    assert paths["chart"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = paths["markdown"].read_text()
    assert "| CODER-Adapter (α, β tuned on val) |" in md and "fewshot.png" in md
    assert "Tip-Adapter (α=1, β=5.5, no validation)" in format_summary(report)


class RecordingDataset(ImageDataset):
    """An ImageDataset that writes every read of its labels into a shared event log."""

    events: list

    def labels(self):
        self.events.append(f"labels:{self.split}")
        return super().labels()


def test_test_labels_are_read_once_after_every_search(fake_data, small_knowledge, monkeypatch):
    events: list[str] = []
    RecordingDataset.events = events
    original = adapters_module.search_alpha_beta

    def recording_search(*args, **kwargs):
        events.append("search")
        return original(*args, **kwargs)

    monkeypatch.setattr(adapters_module, "search_alpha_beta", recording_search)
    plain = folder_splits(fake_data)
    train, val, test = (RecordingDataset(d.name, d.class_names, d.paths, d._labels, split=d.split)
                        for d in plain)
    run_fewshot(HashEncoder(dim=16), small_knowledge, train, val, test, shots=(1, 2), seeds=(1, 2, 3),
                augmentation=Augmentation(views=1), num_workers=0)
    assert events.count("labels:test") == 1
    assert events.count("search") == 2 * 2 * 3               # methods × shots × seeds
    assert events.index("labels:test") > max(i for i, e in enumerate(events) if e == "search")
    assert events[-1] == "labels:test"


def test_cli_on_an_image_folder(fake_data, knowledge_file, open_clip_spec, tmp_path, capsys):
    from coderclip.cli import main

    out = tmp_path / "run"
    rc = main(["fewshot", "--data", str(fake_data), "-m", open_clip_spec, "-k", str(knowledge_file),
               "--shots", "1", "2", "--seeds", "1", "2", "--views", "1", "--workers", "0",
               "--methods", "coder-adapter", "-o", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "CODER-Adapter" in text and "Tip-Adapter" not in text
    assert {p.name for p in out.iterdir()} == {"fewshot.json", "fewshot.md", "fewshot.png"}


def test_cli_on_a_registered_loader(fake_data, knowledge_file, monkeypatch, tmp_path, capsys):
    from coderclip import datasets
    from coderclip.cli import main
    from coderclip.encoders import BACKENDS

    def loader(root, split="train"):
        from coderclip.datasets import from_folder

        ds = from_folder(fake_data / split, name="citrus", class_names=list(CLASSES))
        ds.split = split
        return ds

    monkeypatch.setitem(datasets.LOADERS, "citrus", loader)
    monkeypatch.setitem(BACKENDS, "hash", lambda rest, **kw: HashEncoder(dim=16))
    rc = main(["fewshot", "--dataset", "citrus", "--root", "unused", "-m", "hash", "-k",
               str(knowledge_file), "--shots", "1", "--seeds", "1", "--views", "0", "--workers",
               "0", "-o", str(tmp_path / "r")])
    assert rc == 0
    report = json.loads((tmp_path / "r" / "fewshot.json").read_text())
    assert report["dataset"]["name"] == "citrus"
    assert report["methods"]["tip-adapter"]["settings"]["tuned"]["1"]["std"] is None   # one seed


def test_cli_errors_are_one_line(fake_data, capsys):
    from coderclip.cli import main

    assert main(["fewshot", "--data", str(fake_data), "--dataset", "x", "-m", "testbed"]) == 2
    assert main(["fewshot", "--dataset", "no_such_set", "--root", ".", "-m", "testbed"]) == 2
    assert main(["fewshot", "--data", str(fake_data / "train"), "-m", "testbed"]) == 3  # input family
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("coderclip fewshot: error:") for line in err)
    assert "unknown dataset 'no_such_set'" in err[1] and "missing: train, val, test" in err[2]


@pytest.mark.slow
def test_cli_on_the_oxford_pets_loader_uses_its_knowledge_pack(open_clip_spec, tmp_path, capsys):
    """The documented command on a miniature Oxford Pets folder (CoOp split file, 37 breeds,
    2 train / 1 val / 1 test image each): loader, shipped pack, short classes, report files."""
    from coderclip.cli import main
    from coderclip.knowledge.packs import shipped_class_names

    root = tmp_path / "oxford_pets"
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    split = {"train": [], "val": [], "test": []}
    for label, name in enumerate(shipped_class_names("oxford_pets")):
        breed = name.title().replace(" ", "_")
        parts = ("train",) * (4 if label == 0 else 2) + ("val", "test")  # one breed has 4 shots
        for n, part in enumerate(parts, start=1):
            file = f"{breed}_{n}.jpg"
            Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(root / "images" / file)
            split[part].append([file, label, name.replace(" ", "_")])
    (root / "split_zhou_OxfordPets.json").write_text(json.dumps(split))
    out = tmp_path / "report"
    rc = main(["fewshot", "--dataset", "oxford_pets", "--root", str(root), "-m", open_clip_spec,
               "--shots", "1", "2", "4", "--seeds", "1", "2", "--views", "1", "--workers", "0",
               "-o", str(out)])
    assert rc == 0
    report = json.loads((out / "fewshot.json").read_text())
    assert report["provenance"]["knowledge"]["name"] == "oxford_pets"
    assert report["dataset"]["classes"] == 37 and report["n_test_images"] == 37
    assert report["protocol"]["coder_axes"]["texts"] > 37 * 5       # attributes and analogous too
    four = [r for r in report["runs"] if r["shots"] == 4]
    assert all(len(r["classes_with_fewer_shots"]) == 36 and r["support_images"] == 76 for r in four)
    assert "CODER-Adapter (α, β tuned on val)" in capsys.readouterr().out
    # more shots than any class has is refused, not labelled "8-shot"
    rc = main(["fewshot", "--dataset", "oxford_pets", "--root", str(root), "-m", open_clip_spec,
               "--shots", "8", "-o", str(out)])
    assert rc == 2 and "at most 4" in capsys.readouterr().err

