"""Knowledge, class lists, datasets and cached state: malformed files are refused in one line that
names them; knowledge is matched to the data's classes; damaged memos repair themselves."""

from __future__ import annotations

import json
import os

import numpy as np
import torch
from PIL import Image

from coderclip.datasets import from_csv
from coderclip.features import FeatureSet, save_features
from coderclip.knowledge import Knowledge

from .conftest import assert_one_clean_line, cli


def test_knowledge_nested_100k_deep(capsys, tmp_path, photo):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = cli(capsys, "classify", photo, "-m", "testbed", "-k", deep)
    assert_one_clean_line(code, err, 3, str(deep), "nested too deeply")
    code, _, err = cli(capsys, "knowledge", "show", deep)
    assert_one_clean_line(code, err, 3, str(deep))


def test_class_list_json_nested_deep_for_generate(capsys, tmp_path):
    deep = tmp_path / "classes.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    code, _, err = cli(capsys, "generate", "--classes", deep, "--llm", "ollama:x", "--out",
                       tmp_path / "k.json", "--types", "attributes")
    assert_one_clean_line(code, err, 3, str(deep))


def test_damaged_fingerprint_memo_is_ignored_and_replaced(capsys, tmp_path, open_clip_dir, photo,
                                                          classes_file):
    from coderclip.encoders.fingerprint import weights_fingerprint
    from coderclip.paths import cache_dir

    folder = open_clip_dir / "local"
    good = weights_fingerprint(folder)
    memos = list((cache_dir() / "fingerprints").glob("*.json"))
    assert memos
    for m in memos:
        m.write_text(json.dumps({"sha256": 5}))
    assert weights_fingerprint(folder) == good                 # re-hashed, not AttributeError
    assert all(isinstance(json.loads(m.read_text())["sha256"], str) for m in memos)


def test_features_with_nan_are_refused_by_name(capsys, tmp_path, classes_file):
    emb = torch.randn(4, 384)   # the testbed model's embedding size
    feats = save_features(tmp_path / "f.safetensors", FeatureSet(emb, ids=list("abcd")))
    from safetensors.torch import load_file, save_file

    t = load_file(str(feats))
    t["embeddings"][2, 5] = float("nan")
    save_file(t, str(feats), metadata={"format": "coderclip-features-1", "ids": json.dumps(list("abcd"))})
    code, out, err = cli(capsys, "classify", "--features", feats, "-m", "testbed", "--classes", classes_file)
    assert_one_clean_line(code, err, 3, str(feats), "NaN", "rows [2]")
    assert "nan%" not in out
    wrong = save_features(tmp_path / "g.safetensors", FeatureSet(torch.randn(4, 32)))
    code, out, err = cli(capsys, "classify", "--features", wrong, "-m", "testbed", "--classes", classes_file)
    assert_one_clean_line(code, err, 3, str(wrong), "32-d", "384-d")
    np.save(tmp_path / "g.npy", np.full((2, 384), np.inf, dtype=np.float32))
    code, _, err = cli(capsys, "classify", "--features", tmp_path / "g.npy", "-m", "testbed",
                       "--classes", classes_file)
    assert_one_clean_line(code, err, 3, "g.npy", "infinite")


def _folder(root, classes, per_class=1):
    rng = np.random.default_rng(0)
    for c in classes:
        d = root / c
        d.mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def test_evaluate_scores_against_the_folders_classes_like_benchmark(capsys, tmp_path, open_clip_spec):
    data = _folder(tmp_path / "data", ["lime", "lemon", "orange"])
    big = Knowledge.from_class_names(["lime", "lemon", "orange", "kiwi", "mango", "plum"])
    k = big.save(tmp_path / "k.json")
    code, out, err = cli(capsys, "evaluate", data, "-m", open_clip_spec, "-k", k,
                         "--report", tmp_path / "r.json")
    assert code == 0, err
    assert "scoring against the 3 classes" in err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dataset"]["classes"] == 3


def test_non_utf8_class_folder_is_read_as_latin1(capsys, tmp_path, open_clip_spec):
    data = tmp_path / "data"
    _folder(data, ["lime"])
    raw = os.fsencode(data) + b"/caf\xe9"
    os.mkdir(raw)
    Image.new("RGB", (16, 16), (120, 80, 40)).save(os.fsdecode(raw + b"/0.png"))
    code, out, err = cli(capsys, "evaluate", data, "-m", open_clip_spec, "--report", tmp_path / "r.json")
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["dataset"]["classes"] == 2 and report["dataset"]["images"] == 2


def test_csv_header_names_are_recognised(tmp_path):
    for i in range(2):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i}.png")
    for header in ("file,class", "image,category", "path,label", "filename,name"):
        m = tmp_path / "m.csv"
        m.write_text(f"{header}\n0.png,lime\n1.png,lemon\n")
        ds = from_csv(m)
        assert len(ds) == 2 and sorted(ds.class_names) == ["lemon", "lime"], header
