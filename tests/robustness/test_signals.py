"""Interruptions: Ctrl-C during a text-bank build finishes the part in hand, keeps every finished
part and says so; SIGKILL loses at most one part; the next run continues from there. (Ctrl-C
during ``generate`` is covered in tests/atg/test_resume.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import coderclip
from coderclip.encoders.base import Encoder
from coderclip.knowledge import ClassKnowledge, Knowledge

from .conftest import assert_one_clean_line, cli

SRC = Path(coderclip.__file__).resolve().parents[1]   # the coderclip under test


def _knowledge(path) -> Path:
    classes = [ClassKnowledge(n, attributes=[f"{n} detail {i}" for i in range(12)])
               for n in ("lime", "lemon", "orange")]
    return Knowledge(classes, domain="food").save(path)


@pytest.mark.slow
def test_ctrl_c_during_the_bank_build_keeps_finished_parts(capsys, tmp_path, monkeypatch, photo,
                                                          open_clip_spec):
    import coderclip.bank.cache as cache_mod

    k = _knowledge(tmp_path / "k.json")
    monkeypatch.setattr(cache_mod, "SAVE_EVERY", 8)
    calls = []
    real = Encoder.encode_texts

    def encode_and_interrupt(self, texts, *a, **kw):
        calls.append(len(texts))
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)     # Ctrl-C while the second part is encoded
        return real(self, texts, *a, **kw)

    monkeypatch.setattr(Encoder, "encode_texts", encode_and_interrupt)
    code, out, err = cli(capsys, "classify", photo, "-m", open_clip_spec, "-k", k, "--method", "coder")
    assert code == 130 and "Traceback" not in err, err
    assert_one_clean_line(code, err, 130, "16 of 39 new texts encoded and saved in the cache",
                          "run the same command again")
    assert calls == [8, 8] and out == ""
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler

    calls.clear()
    monkeypatch.setattr(Encoder, "encode_texts", lambda self, texts, *a, **kw: calls.append(len(texts))
                        or real(self, texts, *a, **kw))
    code, out, err = cli(capsys, "classify", photo, "-m", open_clip_spec, "-k", k, "--method", "coder")
    assert code == 0, err
    assert sum(calls) == 39 - 16 and "1. " in out      # only the rest is encoded


@pytest.mark.slow
def test_sigkill_during_the_bank_build_loses_at_most_one_part(tmp_path, open_clip_spec):
    k = _knowledge(tmp_path / "k.json")
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import os, signal, sys
        import coderclip.bank.cache as cache_mod
        from coderclip.bank import TextBank
        from coderclip.encoders import load_encoder
        from coderclip.encoders.base import Encoder
        from coderclip.knowledge import load_knowledge
        cache_mod.SAVE_EVERY = 8
        real, calls = Encoder.encode_texts, []
        def encode(self, texts, *a, **kw):
            calls.append(len(texts))
            if len(calls) == 3 and sys.argv[1] == "kill":
                os.kill(os.getpid(), signal.SIGKILL)   # dies while encoding the third part
            return real(self, texts, *a, **kw)
        Encoder.encode_texts = encode
        enc = load_encoder({open_clip_spec!r}, device="cpu")
        TextBank.build(load_knowledge({str(k)!r}), enc, types=("name", "attribute"))
        print(sum(calls))
    """)
    env = dict(os.environ, PYTHONPATH=str(SRC), CODERCLIP_CACHE=str(cache))
    killed = subprocess.run([sys.executable, "-c", script, "kill"], env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    shards = list(cache.glob("text-embeddings/*/v2/shard-*.safetensors"))
    assert len(shards) == 2                                   # the two finished parts
    again = subprocess.run([sys.executable, "-c", script, "resume"], env=env, capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr
    assert int(again.stdout.split()[-1]) == 39 - 16


def test_ctrl_c_during_classify_finishes_the_batch_and_resumes(capsys, tmp_path, monkeypatch, photo,
                                                             open_clip_spec):
    """The first Ctrl-C lets the batch being encoded be written, then stops saying how many images
    the output keeps; the same command run again classifies only the rest."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.png").write_bytes(photo.read_bytes())
    classes = tmp_path / "c.txt"
    classes.write_text("lime\nlemon\n")
    out_csv = tmp_path / "out.csv"
    argv = ["classify", folder, "-m", open_clip_spec, "--classes", classes, "--format", "csv",
            "-o", out_csv, "--batch-size", "2", "--workers", "0", "--method", "clip"]
    real, calls, armed = Encoder.encode_images, [], [True]

    def encode(self, *a, **kw):
        calls.append(1)
        if len(calls) == 2 and armed[0]:
            os.kill(os.getpid(), signal.SIGINT)      # Ctrl-C while the second batch is encoded
        return real(self, *a, **kw)

    monkeypatch.setattr(Encoder, "encode_images", encode)
    code, _, err = cli(capsys, *argv)
    assert_one_clean_line(code, err, 130, "4 image(s) are classified and kept in", str(out_csv),
                          "run the same command again")
    assert len(out_csv.read_text().splitlines()) == 1 + 4 * 2          # header + 4 images x top 2
    calls.clear()
    armed[0] = False
    code, _, err = cli(capsys, *argv)
    assert code == 0, err
    # CSV cannot tell whether its last image's rows are all there, so that image is redone too
    assert "3 image(s) already done" in err and len(calls) == 2
    assert len(out_csv.read_text().splitlines()) == 1 + 6 * 2


@pytest.mark.slow
def test_ctrl_c_during_evaluate_says_saved_features_are_reused(capsys, tmp_path, monkeypatch,
                                                                 open_clip_spec):
    from PIL import Image

    from coderclip.encoders.openclip import OpenClipEncoder

    data = tmp_path / "data"
    for name in ("lime", "lemon"):
        (data / name).mkdir(parents=True)
        Image.new("RGB", (16, 16), (90, 160, 40)).save(data / name / "0.png")
    k = _knowledge(tmp_path / "k.json")

    def interrupt(self, pixels):
        raise KeyboardInterrupt    # Ctrl-C while the images are encoded

    monkeypatch.setattr(OpenClipEncoder, "_encode_image_batch", interrupt)
    code, out, err = cli(capsys, "evaluate", data, "-m", open_clip_spec, "-k", k, "--report",
                         tmp_path / "r.json")
    assert_one_clean_line(code, err, 130, "interrupted", "image features already saved in the cache")
    assert not (tmp_path / "r.json").exists()
