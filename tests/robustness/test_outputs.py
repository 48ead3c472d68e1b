"""Output paths: an unwritable destination is reported before the work, in one line naming it;
names that are not UTF-8 survive; files get the umask's permissions; stdout closed or full."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import coderclip
from coderclip.knowledge import Knowledge

from .conftest import assert_one_clean_line, cli

SRC = Path(coderclip.__file__).resolve().parents[1]   # the coderclip under test


def test_classify_output_in_an_unwritable_folder_fails_before_the_model(capsys, unwritable_dir, photo,
                                                                         classes_file):
    target = unwritable_dir / "out.csv"
    code, out, err = cli(capsys, "classify", photo, "-m", "open_clip:ViT-B-32:/never/loaded.pt",
                         "--classes", classes_file, "-o", target)
    assert_one_clean_line(code, err, 3, "--output", str(unwritable_dir))
    assert out == ""


def test_output_that_is_a_folder_or_under_a_file(capsys, tmp_path, photo, classes_file):
    # a folder is a valid -o for Parquet shards (the default there); a CSV cannot be written to one
    code, _, err = cli(capsys, "classify", photo, "-m", "testbed", "--classes", classes_file,
                       "--format", "csv", "-o", tmp_path)
    assert_one_clean_line(code, err, 3, str(tmp_path), "is a folder")
    code, _, err = cli(capsys, "classify", photo, "-m", "testbed", "--classes", classes_file,
                       "-o", photo / "out.csv")
    assert_one_clean_line(code, err, 3, str(photo))


@pytest.mark.parametrize("command", ["evaluate", "merge", "demo", "benchmark", "fewshot", "generate"])
def test_every_command_checks_its_output_first(capsys, tmp_path, unwritable_dir, command):
    k = Knowledge.from_class_names(["lime", "lemon"]).save(tmp_path / "k.json")
    (tmp_path / "data" / "lime").mkdir(parents=True)
    (tmp_path / "classes.txt").write_text("lime\nlemon\n")
    target = unwritable_dir / "out"
    argv = {
        "evaluate": ["evaluate", tmp_path / "data", "-m", "testbed", "-k", k, "--report", target / "r.json"],
        "merge": ["knowledge", "merge", k, k, "--out", target / "m.json"],
        "demo": ["demo", "--out", target],
        "benchmark": ["benchmark", "-d", "folder", "-r", tmp_path / "data", "-m", "testbed", "-o", target],
        "fewshot": ["fewshot", "--dataset", "nope", "--root", tmp_path, "-m", "testbed", "-o", target],
        "generate": ["generate", "--classes", tmp_path / "classes.txt", "--llm", "ollama:x",
                     "--types", "attributes", "--out", target / "k.json"],
    }[command]
    code, _, err = cli(capsys, *argv)
    if command == "fewshot":   # the data is checked first there: an unknown dataset is a usage error
        assert_one_clean_line(code, err, 2, "nope")
        return
    assert_one_clean_line(code, err, 3, str(unwritable_dir))


@pytest.mark.slow
def test_non_utf8_file_names_survive_csv_and_json(capsys, tmp_path, photo, classes_file,
                                                  open_clip_spec):
    folder = tmp_path / "imgs"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xe9.png"       # Latin-1 bytes: not UTF-8
    with open(raw, "wb") as f:
        f.write(photo.read_bytes())
    out_csv = tmp_path / "out.csv"
    code, _, err = cli(capsys, "classify", folder, "-m", open_clip_spec, "--classes", classes_file,
                       "--format", "csv", "-o", out_csv, "--method", "clip")
    assert code == 0, err
    data = out_csv.read_bytes()
    assert b"caf\xe9.png" in data                      # the file's own name, byte for byte
    rows = list(csv.reader(io.StringIO(data.decode("utf-8", "surrogateescape"))))
    assert os.fsencode(rows[1][0]) == raw and len(rows) == 4
    out_json = tmp_path / "out.json"
    code, _, err = cli(capsys, "classify", folder, "-m", open_clip_spec, "--classes", classes_file,
                       "--format", "json", "-o", out_json, "--method", "clip")
    assert code == 0 and b"caf\xe9.png" in out_json.read_bytes()
    # and on a terminal or pipe: the name's own bytes, not a UnicodeEncodeError
    p = subprocess.run([sys.executable, "-m", "coderclip", "classify", folder, "-m", open_clip_spec,
                        "--classes", classes_file, "--method", "clip"],
                       env=dict(os.environ, PYTHONPATH=str(SRC), LC_ALL="C.UTF-8"), capture_output=True)
    assert p.returncode == 0 and b"caf\xe9.png" in p.stdout, p.stderr


def test_outputs_follow_the_umask(capsys, tmp_path, photo, classes_file, open_clip_spec):
    old = os.umask(0o022)
    try:
        code, _, err = cli(capsys, "classify", photo, "-m", open_clip_spec, "--classes", classes_file,
                           "-o", tmp_path / "r.txt", "--method", "clip")
    finally:
        os.umask(old)
    assert code == 0, err
    assert (tmp_path / "r.txt").stat().st_mode & 0o777 == 0o644


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run([sys.executable, "-m", "coderclip", *map(str, args)], env=env,
                          capture_output=kw.pop("capture_output", True), text=True, **kw)


@pytest.mark.slow
def test_stdout_closed_or_full_is_one_line(tmp_path, photo, classes_file, open_clip_spec):
    argv = ["classify", photo, "-m", open_clip_spec, "--classes", classes_file, "--method", "clip"]
    # closed stdout (`>&-`): Python sees sys.stdout as None
    cmd = " ".join(f"'{a}'" for a in [sys.executable, "-m", "coderclip", *map(str, argv)])
    closed = subprocess.run(["bash", "-c", f"{cmd} >&-"], env=dict(os.environ, PYTHONPATH=str(SRC)),
                            stderr=subprocess.PIPE, text=True)
    assert closed.returncode == 3 and "Traceback" not in closed.stderr
    assert "standard output is closed" in closed.stderr and "-o" in closed.stderr
    with open("/dev/full", "w") as full:
        p = subprocess.run([sys.executable, "-m", "coderclip", *map(str, argv)],
                           env=dict(os.environ, PYTHONPATH=str(SRC)), stdout=full,
                           stderr=subprocess.PIPE, text=True)
    assert p.returncode == 3 and "Traceback" not in p.stderr and "Exception ignored" not in p.stderr
    assert "No space left on device" in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("coderclip classify: error:")


def test_json_report_of_knowledge_merge_and_evaluate_are_written(capsys, tmp_path):
    k = Knowledge.from_class_names(["lime", "lemon"]).save(tmp_path / "k.json")
    code, _, err = cli(capsys, "knowledge", "merge", k, k, "--out", tmp_path / "new" / "m.json")
    assert code == 0, err
    assert json.loads((tmp_path / "new" / "m.json").read_text())["classes"][0]["name"] == "lime"


def test_rerank_winner_is_marked(capsys, tmp_path):
    """Where the rerank changed the answer, the row says it was chosen by the rerank."""
    import numpy as np

    from coderclip.rows import RowWriter

    ids = ["a.jpg", "b.jpg"]
    classes = np.array([["lime", "lemon"], ["lemon", "lime"]], dtype=object)
    probs = np.array([[0.62, 0.31], [0.7, 0.2]])
    with RowWriter(None, "table", {}) as w:
        w.write(ids, classes, probs, [True, False])
    table = capsys.readouterr().out.splitlines()
    assert table[1].endswith("(chosen by the rerank)") and "rerank" not in "".join(table[2:])
    with RowWriter(tmp_path / "r.jsonl", "jsonl", {"x": 1}) as w:
        w.write(ids, classes, probs, np.array([True, False]))
    got = [json.loads(ln) for ln in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [r["reranked"] for r in got] == [True, False]
