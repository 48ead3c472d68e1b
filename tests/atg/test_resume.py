"""Killing ``coderclip generate`` (SIGKILL, at a random point) and running it again gives the same
file as a run that was never interrupted; the journal survives torn writes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coderclip.atg.journal import Journal
from coderclip.errors import ConfigError
from coderclip.knowledge import load_knowledge

CLASSES = ["hamburger", "hot dog", "pizza", "sushi", "ramen", "tacos", "waffles", "donuts",
           "french fries", "ice cream"]
PAIRS = [("hamburger", "hot dog"), ("pizza", "tacos"), ("donuts", "waffles"), ("ramen", "sushi"),
         ("french fries", "ice cream"), ("hamburger", "pizza")]
SRC = Path(__file__).resolve().parents[2] / "src"


def _generate(tmp: Path, server_url: str, out: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(SRC), SOURCE_DATE_EPOCH="1700000000")
    cmd = [sys.executable, "-m", "coderclip", "generate", "--classes", str(tmp / "classes.txt"),
           "--llm", "vllm:test-model", "--base-url", server_url, "--out", str(tmp / out),
           "--domain", "food", "--synonyms-from", "llm", "--pairs-file", str(tmp / "pairs.csv"),
           "--concurrency", "3", "--no-progress"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_at_a_random_point_then_rerun_gives_the_same_file(chat_server, tmp_path):
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (tmp_path / "pairs.csv").write_text("\n".join(f"{a},{b}" for a, b in PAIRS) + "\n")
    jitter = random.Random(seed + 1)
    server = chat_server(delay=lambda: jitter.uniform(0.0, 0.06))
    n_tasks = 3 * len(CLASSES) + len(PAIRS)

    # 1. start, and SIGKILL once the server has seen a random number of requests
    kill_after = rng.randint(2, n_tasks - 4)
    proc = _generate(tmp_path, server.url, "k.json")
    deadline = time.monotonic() + 60
    first = None
    while len(server.requests) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        if first is None and server.requests:
            first = time.monotonic() - deadline + 60
        time.sleep(0.005)
    print(f"T first request at {first}")
    print(f"T kill at {time.monotonic() - deadline + 60:.1f}s after {len(server.requests)} requests")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (tmp_path / "k.json").exists(), f"seed {seed}: the run finished before the kill"
    journal = tmp_path / "k.json.journal.jsonl"
    finished = [json.loads(ln) for ln in journal.read_text().splitlines()[1:] if ln.endswith("}")]
    asked_before = len(server.requests)

    # 2. run the same command again: it completes, asking only what was not finished
    proc = _generate(tmp_path, server.url, "k.json")
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=120)
    print(f"T resume {time.monotonic() - t0:.1f}s\n{out}")
    assert proc.returncode == 0, f"seed {seed}\n{out}\n{err}"
    # a finished task asked again would show up twice in the append-only journal
    keys = [json.loads(ln)["key"] for ln in journal.read_text().splitlines()[1:]]
    assert len(keys) == len(set(keys)) == n_tasks, f"seed {seed}: lost or duplicated work"
    assert {r["key"] for r in finished} <= set(keys)
    assert len(server.requests) - asked_before >= n_tasks - len(finished)

    # 3. an uninterrupted run with the same scripted answers writes the same bytes
    proc = _generate(tmp_path, server.url, "reference.json")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert (tmp_path / "k.json").read_bytes() == (tmp_path / "reference.json").read_bytes(), f"seed {seed}"
    k = load_knowledge(tmp_path / "k.json")
    assert all(c.attributes and c.synonyms and c.analogous and c.contrasts for c in k.classes)


def test_ctrl_c_stops_at_once_and_keeps_finished_work(chat_server, tmp_path):
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    (tmp_path / "pairs.csv").write_text("hamburger,hot dog\n")
    # the first three answers come at once; later ones hang until the run is interrupted, so the
    # child cannot finish before the signal arrives however loaded the machine is
    server = chat_server(delay=lambda: 0.0 if len(server.requests) <= 3 else 120.0)
    proc = _generate(tmp_path, server.url, "k.json")
    journal = tmp_path / "k.json.journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None and (
            not journal.exists() or len(journal.read_text().splitlines()) < 3):
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "kept in the journal" in err and "Traceback" not in err
    assert time.monotonic() - t0 < 5  # in-flight requests are abandoned, not awaited
    assert len(journal.read_text().splitlines()) >= 3
    assert not (tmp_path / "k.json").exists()


def test_journal_cuts_a_torn_last_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append({"key": "a", "items": ["x"]})
        j.append({"key": "b", "items": ["y"]})
    with open(path, "ab") as f:
        f.write(b'{"key": "c", "items": ["half a li')  # the process died mid-write
    with Journal(path) as j:
        assert set(j.records) == {"a", "b"}
        j.append({"key": "c", "items": ["z"]})
    with Journal(path) as j:
        assert j.get("c")["items"] == ["z"]
    assert all(json.loads(ln) for ln in path.read_text().splitlines())


def test_journal_last_record_wins_and_is_locked(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.append({"key": "a", "items": ["old"]})
        j.append({"key": "a", "items": ["new"]})
        with pytest.raises(ConfigError, match="in use by another"):
            Journal(path).open()
    with Journal(path) as j:
        assert j.get("a")["items"] == ["new"]


def test_journal_refuses_foreign_files(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text("not json at all\n")
    with pytest.raises(ConfigError, match="not JSON"):
        Journal(path).open()
