"""The streaming pipeline: batch functions equal whole-array scoring, and classify writes rows
batch by batch, keeps finished batches when interrupted and resumes without redoing them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from coderclip.classifier import CoderClassifier
from coderclip.cli import main
from coderclip.errors import ConfigError
from coderclip.features import FeatureSet, save_features
from coderclip.pipeline import (EmbeddedBatch, classify_stream, embedding_batches, predict_batch,
                                stage1_scores, top_k_batch)
from coderclip.rows import RowWriter

from .helpers import HashEncoder, random_knowledge

D, C = 16, 8


@pytest.fixture
def fitted():
    kn = random_knowledge(C, seed=1, contrast_neighbours=3)
    return CoderClassifier(HashEncoder(D), kn, tau=1.0).fit()


def _x(n, seed=0):
    return torch.nn.functional.normalize(torch.randn(n, D, generator=torch.Generator().manual_seed(seed)), dim=1)


def test_batches_equal_one_big_batch(fitted):
    x = _x(300)
    t = fitted.tables_
    whole_idx, whole_p = top_k_batch(x, t, k=3, tau=1.0)
    parts = [top_k_batch(x[i:i + 7], t, k=3, tau=1.0) for i in range(0, 300, 7)]
    assert (np.concatenate([p[0] for p in parts]) == whole_idx).all()
    assert np.allclose(np.concatenate([p[1] for p in parts]), whole_p, atol=1e-6)
    assert (predict_batch(x, t, tau=1.0) == whole_idx[:, 0]).all()
    assert stage1_scores(x, t).shape == (300, C)
    # the classifier streams through the same functions, in blocks of its own
    idx, _ = fitted.top_k(embeddings=x.numpy(), k=3)
    assert (idx == whole_idx).all()


def test_predict_proba_fills_a_memory_mapped_file(fitted, tmp_path):
    x = _x(50)
    out = np.lib.format.open_memmap(tmp_path / "p.npy", mode="w+", dtype=np.float32, shape=(50, C))
    got = fitted.predict_proba(embeddings=x, out=out)
    assert got is out
    out.flush()
    assert np.allclose(np.load(tmp_path / "p.npy"), fitted.predict_proba(embeddings=x), atol=1e-6)
    with pytest.raises(ConfigError, match="too small"):
        fitted.predict_proba(embeddings=x, out=np.zeros((10, C), np.float32))


def test_stream_writes_each_batch_and_resumes(fitted, tmp_path):
    x = _x(100)
    ids = [f"img{i:03d}" for i in range(100)]
    path = tmp_path / "out.csv"
    settings = {"model": "m", "top": 2}
    stream = dict(class_names=fitted.classes_, k=2, tau=1.0)

    class Stop(Exception):
        pass

    calls = []
    with pytest.raises(Stop):
        with RowWriter(path, "csv", settings) as w:
            def write(*a):
                if len(calls) == 3:
                    raise Stop                              # killed during the fourth batch
                calls.append(len(a[0]))
                w.write(*a)

            classify_stream(embedding_batches(x, ids, batch_size=10), fitted.tables_, write, **stream)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["image", "rank", "label", "score"] and len(rows) == 1 + 30 * 2
    assert json.loads((tmp_path / "out.csv.run.json").read_text())["complete"] is False
    with path.open("a") as f:                              # killed inside the next image's rows:
        f.write("img030,1,class 1,0.500000\nimg030,2,cla")  # one whole line, then a torn one
    seen = []
    with RowWriter(path, "csv", settings) as w:
        assert w.resumed == 30 and w.done("img000") and not w.done("img050")

        def write2(ids_, *a):
            seen.extend(ids_)
            w.write(ids_, *a)

        classify_stream(embedding_batches(x, ids, batch_size=10, skip=w.done), fitted.tables_,
                        write2, **stream)
    assert seen == ids[30:]                                  # nothing redone
    rows = list(csv.reader(path.open()))[1:]
    assert [r[0] for r in rows[::2]] == ids and len(rows) == 200
    assert json.loads((tmp_path / "out.csv.run.json").read_text())["complete"] is True
    # the same rows as an uninterrupted run
    fresh = tmp_path / "fresh.csv"
    with RowWriter(fresh, "csv", settings) as w:
        classify_stream(embedding_batches(x, ids, batch_size=10), fitted.tables_, w.write, **stream)
    assert fresh.read_text() == path.read_text()
    with RowWriter(path, "csv", settings) as w:
        assert w.complete and w.done("img077")
    with pytest.raises(ConfigError, match="other settings.*top: 2 then, 3 now"):
        RowWriter(path, "csv", {"model": "m", "top": 3})


def test_classify_command_resumes_and_refuses_another_models_features(capsys, tmp_path, monkeypatch):
    from coderclip import pipeline

    enc = HashEncoder(D, tag="hash")
    kn = random_knowledge(C, seed=1, contrast_neighbours=3)
    kfile = tmp_path / "k.json"
    kn.save(kfile)
    x = _x(40)
    feats = tmp_path / "f.safetensors"
    save_features(feats, FeatureSet(x, ids=[f"p{i}" for i in range(40)], model=enc.identity))
    monkeypatch.setattr("coderclip.cli.classify.load_model", lambda args: enc)
    monkeypatch.setattr(pipeline, "SCORE_BATCH", 8)
    real = pipeline.classify_stream
    out = tmp_path / "out.jsonl"
    argv = ["classify", "--features", str(feats), "-m", "x", "-k", str(kfile), "--format", "jsonl",
            "-o", str(out), "--top", "3"]

    def interrupted(batches, *a, **kw):
        def first_two():
            for i, b in enumerate(batches):
                if i == 2:
                    raise KeyboardInterrupt
                yield b
        return real(first_two(), *a, **kw)

    monkeypatch.setattr(pipeline, "classify_stream", interrupted)
    assert main(argv) == 130                                 # Ctrl-C during the third batch
    err = capsys.readouterr().err
    assert "16 image(s) are classified and kept in" in err and str(out) in err
    assert len(out.read_text().splitlines()) == 16
    monkeypatch.setattr(pipeline, "classify_stream", real)
    assert main(argv) == 0
    assert "16 image(s) already done" in capsys.readouterr().err
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [r["image"] for r in lines] == [f"p{i}" for i in range(40)]
    assert all(len(r["predictions"]) == 3 for r in lines)
    # a features file made by another model is refused, naming both
    save_features(feats, FeatureSet(x, model="another-model"))
    code = main(argv[:-2] + ["--top", "2", "--overwrite"])
    err = capsys.readouterr().err
    assert code != 0 and "another-model" in err and enc.identity in err


def test_embedding_batches_normalise_and_check_ids():
    x = torch.randn(5, D) * 3
    (b,) = list(embedding_batches(x))
    assert isinstance(b, EmbeddedBatch) and torch.allclose(b.embeddings.norm(dim=1), torch.ones(5))
    assert b.ids == ["0", "1", "2", "3", "4"]
    with pytest.raises(ConfigError, match="3 ids for 5"):
        list(embedding_batches(x, ["a", "b", "c"]))


@pytest.mark.slow
def test_a_killed_classify_keeps_its_batches_and_the_rerun_completes(tmp_path, open_clip_spec,
                                                                      open_clip_encoder):
    """SIGKILL at whatever moment (the test waits for the first rows, then kills): the file holds
    only whole rows, and the same command run again finishes it without redoing or repeating."""
    import os
    import signal
    import subprocess
    import sys
    import time

    n = 12_000
    x = torch.randn(n, open_clip_encoder.embed_dim, generator=torch.Generator().manual_seed(1))
    feats = tmp_path / "f.safetensors"
    save_features(feats, FeatureSet(x, ids=[f"img{i:05d}" for i in range(n)],
                                    model=open_clip_encoder.identity))
    classes = tmp_path / "classes.txt"
    classes.write_text("".join(f"class {i}\n" for i in range(50)))
    out = tmp_path / "out.csv"
    cmd = [sys.executable, "-m", "coderclip", "classify", "--features", str(feats), "-m",
           open_clip_spec, "--classes", str(classes), "--format", "csv", "-o", str(out), "--top", "2",
           "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.stat().st_size > 1000:      # some batches are on disk
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if out.exists():
        text = out.read_text()
        lines = text.splitlines()
        assert not lines or lines[0] == "image,rank,label,score"
    again = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    rows = list(csv.reader(out.open()))[1:]
    images = [r[0] for r in rows[::2]]
    assert images == [f"img{i:05d}" for i in range(n)]               # complete, in order, once
    assert [r[1] for r in rows] == ["1", "2"] * n


def test_feature_rows_read_blocks_like_the_whole_file(tmp_path):
    from coderclip.features import load_features, open_features

    x = torch.randn(300, D, generator=torch.Generator().manual_seed(4))
    st = tmp_path / "f.safetensors"
    save_features(st, FeatureSet(x, ids=[f"r{i}" for i in range(300)], model="m"))
    npy = tmp_path / "f.npy"
    np.save(npy, x.numpy())
    whole = load_features(st)
    for path in (st, npy):
        rows = open_features(path)
        assert len(rows) == 300 and rows.shape == (300, D)
        got = torch.cat([b.embeddings for b in embedding_batches(rows, batch_size=64)])
        assert torch.allclose(got, whole.embeddings, atol=1e-6)
    rows = open_features(st)
    assert rows.ids == whole.ids and rows.model == "m"
