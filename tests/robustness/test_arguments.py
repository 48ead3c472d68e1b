"""Command-line arguments: numbers out of range, missing or wrong inputs are refused in one line
with the usage status (2) or the input status (3), before any model is loaded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from .conftest import assert_one_clean_line, cli

#: A model spec that would fail if it were ever loaded: every case below must stop before that.
NEVER_LOADED = "open_clip:ViT-B-32:/nowhere/never-loaded.pt"


@pytest.mark.parametrize("option, value", [
    ("--top", "-3"), ("--top", "0"), ("--batch-size", "0"), ("--batch-size", "-5"),
    ("--workers", "-1"), ("--tau", "2"), ("--tau", "nan"), ("--rerank-k", "0"), ("--top", "many"),
])
def test_classify_numbers_are_range_checked(capsys, photo, classes_file, option, value):
    code, out, err = cli(capsys, "classify", photo, "-m", NEVER_LOADED, "--classes", classes_file,
                         option, value)
    assert_one_clean_line(code, err, 2, option, value if value != "nan" else "NaN")
    assert out == ""


@pytest.mark.parametrize("argv, option", [
    (["generate", "--classes", "c.txt", "--llm", "ollama:x", "--out", "k.json", "--concurrency", "0"], "--concurrency"),
    (["generate", "--classes", "c.txt", "--llm", "ollama:x", "--out", "k.json", "--timeout", "0"], "--timeout"),
    (["generate", "--classes", "c.txt", "--llm", "ollama:x", "--out", "k.json", "--max-tokens", "-1"], "--max-tokens"),
    (["demo", "--per-class", "0"], "--per-class"),
    (["fewshot", "--data", "d", "-m", NEVER_LOADED, "--shots", "0"], "--shots"),
    (["fewshot", "--data", "d", "-m", NEVER_LOADED, "--views", "-2"], "--views"),
    (["benchmark", "-d", "folder", "-r", "d", "-m", NEVER_LOADED, "-o", "o", "--batch-size", "0"], "--batch-size"),
])
def test_other_commands_range_check_their_numbers(capsys, argv, option):
    code, _, err = cli(capsys, *argv)
    assert_one_clean_line(code, err, 2, option)


def _split_folder(root, per_class: int):
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for c in ("lime", "lemon"):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return root


def test_more_shots_than_images_is_refused_before_the_model(capsys, tmp_path):
    data = _split_folder(tmp_path / "fruit", per_class=4)
    code, out, err = cli(capsys, "fewshot", "--data", data, "-m", NEVER_LOADED, "--shots", "1", "100",
                         "-o", tmp_path / "out")
    assert_one_clean_line(code, err, 2, "--shots 100", "at most 4")
    assert not (tmp_path / "out" / "fewshot.json").exists()


def test_inputs_are_checked_before_the_model_loads(capsys, tmp_path, photo):
    # the model spec names a checkpoint that does not exist; the class list is reported first
    code, _, err = cli(capsys, "classify", photo, "-m", NEVER_LOADED, "--classes", tmp_path / "none.txt")
    assert_one_clean_line(code, err, 3, "none.txt")
    code, _, err = cli(capsys, "classify", photo, "-m", NEVER_LOADED, "-k", tmp_path / "none.json")
    assert_one_clean_line(code, err, 3, "none.json")


def test_classes_option_pointing_at_a_folder(capsys, tmp_path, photo):
    code, _, err = cli(capsys, "classify", photo, "-m", NEVER_LOADED, "--classes", tmp_path)
    assert_one_clean_line(code, err, 3, str(tmp_path), "is a folder")


def test_debug_shows_the_traceback_and_the_line(capsys, tmp_path, photo):
    code, _, err = cli(capsys, "classify", photo, "-m", NEVER_LOADED, "--classes", tmp_path / "x.txt",
                       "--debug")
    assert code == 3 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("coderclip classify: error:")


def test_unexpected_errors_become_one_line_with_status_1(capsys, monkeypatch, photo, classes_file):
    import coderclip.cli.classify as classify

    def broken(args):
        raise KeyError("surprise")

    monkeypatch.setattr(classify, "run", broken)  # main builds its parser per call: it binds this
    code, _, err = cli(capsys, "classify", photo, "-m", NEVER_LOADED, "--classes", classes_file)
    assert_one_clean_line(code, err, 1, "internal error", "KeyError", "--debug")


def test_generate_reads_the_class_list_before_loading_the_encoder(capsys, tmp_path):
    code, _, err = cli(capsys, "generate", "--classes", tmp_path / "none.txt", "--llm", "ollama:x",
                       "--encoder", NEVER_LOADED, "--out", tmp_path / "k.json", "--types", "attributes")
    assert_one_clean_line(code, err, 3, "none.txt")


def test_fewshot_knowledge_that_misses_a_class_fails_before_the_model(capsys, tmp_path):
    from coderclip.knowledge import Knowledge

    data = _split_folder(tmp_path / "fruit", per_class=2)
    k = Knowledge.from_class_names(["lime", "kiwi"]).save(tmp_path / "k.json")
    code, _, err = cli(capsys, "fewshot", "--data", data, "-m", NEVER_LOADED, "-k", k, "--shots", "1",
                       "-o", tmp_path / "out")
    assert_one_clean_line(code, err, 3, "lemon")
