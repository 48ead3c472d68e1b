"""The command line end to end on real image files with locally saved models."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from coderclip.cli import main

from .test_evaluation import make_folder_dataset


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def classes_file(tmp_path):
    p = tmp_path / "classes.txt"
    p.write_text("lime\nlemon\norange\n")
    return p


def test_help_lists_commands_with_examples(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "classify" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["classify", "--help"])
    assert "examples:" in capsys.readouterr().out


def test_classify_table_json_csv(capsys, tmp_path, open_clip_spec, image_files, classes_file):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in ("jpeg", "png", "gray", "rgba", "truncated", "not_image"):
        shutil.copy(image_files[k], folder / image_files[k].name)
    code, out, err = run(capsys, "classify", folder, "--model", open_clip_spec, "--classes", classes_file,
                         "--top", "2")
    assert code == 0
    assert out.count("  1. ") == 4 and "skipped 2 unreadable image(s)" in err
    assert "truncated.jpg" in err and "notes.jpg" in err
    code, out, _ = run(capsys, "classify", image_files["jpeg"], "-m", open_clip_spec, "--classes",
                       classes_file, "--format", "json")
    data = json.loads(out)
    assert data["results"][0]["image"] == str(image_files["jpeg"])
    probs = [p["score"] for p in data["results"][0]["predictions"]]
    assert len(probs) == 3 and probs == sorted(probs, reverse=True)
    target = tmp_path / "out.csv"
    code, _, _ = run(capsys, "classify", image_files["png"], image_files["gray"], "-m", open_clip_spec,
                     "--classes", classes_file, "--format", "csv", "-o", target, "--method", "clip")
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 6 and rows[0].keys() == {"image", "rank", "label", "score"}


def test_classify_with_hf_model_and_knowledge(capsys, tmp_path, hf_clip_dir, small_knowledge, image_files):
    kfile = small_knowledge.save(tmp_path / "k.json")
    code, out, _ = run(capsys, "classify", image_files["jpeg"], "-m", f"hf:{hf_clip_dir}", "-k", kfile,
                       "--format", "json")
    assert code == 0 and {p["label"] for p in json.loads(out)["results"][0]["predictions"]} == {"lime", "lemon", "orange"}


def test_evaluate_folder_and_csv(capsys, tmp_path, open_clip_spec, hf_clip_dir, small_knowledge):
    root = make_folder_dataset(tmp_path / "data", ["lime", "lemon", "orange"], per_class=2)
    kfile = small_knowledge.save(tmp_path / "k.json")
    report = tmp_path / "r.json"
    code, out, _ = run(capsys, "evaluate", root, "-m", open_clip_spec, "-k", kfile, "--report", report)
    assert code == 0
    assert "CODER + rerank" in out and "P+Att+Ana+Syn" in out
    data = json.loads(report.read_text())
    assert data["format"] == "coderclip-zero-shot-report" and data["n_images"] == 6
    assert data["provenance"]["knowledge"]["file"]["sha256"]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\n" + "".join(
        f"data/{c}/{i}.png,{c}\n" for c in ("lime", "lemon", "orange") for i in range(2)))
    code, out, _ = run(capsys, "evaluate", manifest, "-m", f"hf:{hf_clip_dir}", "-k", kfile)
    assert code == 0 and "6 images" in out


def test_evaluate_real_sample_photos_with_class_folders(capsys, tmp_path, open_clip_spec, sample_photos):
    """Real photos: foolbox's CIFAR-10 samples, sorted into class folders by their label."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    root = tmp_path / "cifar"
    n = 0
    for f in sorted(sample_photos.glob("cifar10_*.png")):
        label = int(f.stem.split("_")[-1])
        (root / names[label]).mkdir(parents=True, exist_ok=True)
        shutil.copy(f, root / names[label] / f.name)
        n += 1
    code, out, _ = run(capsys, "evaluate", root, "-m", open_clip_spec, "-k", "cifar10",
                       "--report", tmp_path / "r.json")
    assert code == 0 and f"{n} images" in out
    # scored against the classes that have a folder, not all ten of the pack
    assert json.loads((tmp_path / "r.json").read_text())["dataset"]["classes"] == len(list(root.iterdir()))


@pytest.mark.parametrize("argv, message, status", [
    (["classify", "nowhere.jpg", "-m", "open_clip:ViT-B-32:/no/ckpt.pt", "--classes", "c.txt"], "does not exist", 3),
    (["evaluate", "{root}", "-m", "{spec}", "--classes", "{dup}"], "duplicate class name", 3),
    (["evaluate", "{root}", "-m", "{spec}", "-k", "{mismatch}"], "sub-folders ['lemon'] are not among the given classes", 3),
    (["classify", "{root}", "-m", "{spec}", "-k", "{bank_dim}", "--features", "{features}"], "one of the two", 2),
])
def test_errors_are_one_line_and_nonzero(capsys, tmp_path, open_clip_spec, argv, message, status):
    root = make_folder_dataset(tmp_path / "data", ["lime", "lemon"], per_class=1)
    dup = tmp_path / "dup.txt"
    dup.write_text("lime\nLime\n")
    from coderclip.knowledge import Knowledge

    mismatch = Knowledge.from_class_names(["lime", "kiwi"]).save(tmp_path / "mm.json")
    subs = {"{root}": root, "{spec}": open_clip_spec, "{dup}": dup, "{mismatch}": mismatch,
            "{bank_dim}": mismatch, "{features}": tmp_path / "f.safetensors"}
    code, _, err = run(capsys, *[subs.get(a, a) for a in argv])
    assert code == status
    assert message in err and "Traceback" not in err and err.count("\n") == 1


def test_evaluate_with_val_chooses_tau_and_k_there(capsys, tmp_path, open_clip_spec, small_knowledge):
    root = make_folder_dataset(tmp_path / "data", ["lime", "lemon", "orange"], per_class=2)
    val = make_folder_dataset(tmp_path / "val", ["lime", "lemon", "orange"], per_class=1)
    kfile = small_knowledge.save(tmp_path / "k.json")
    report = tmp_path / "r.json"
    code, out, _ = run(capsys, "evaluate", root, "-m", open_clip_spec, "-k", kfile, "--val", val,
                       "--report", report)
    assert code == 0 and "chosen on 3 validation images" in out
    p = json.loads(report.read_text())["protocol"]
    assert (p["tau_source"], p["top_k_source"]) == ("val", "val") and p["selection"]["images"] == 3
    code, out, _ = run(capsys, "evaluate", root, "-m", open_clip_spec, "-k", kfile, "--report", report)
    assert json.loads(report.read_text())["protocol"]["tau_source"] == "fixed"
