"""Models: a folder without a tokenizer, a checkpoint that is not one, pickled code, two random
models and a model that outputs NaN are all caught with the model status (4), naming the model."""

from __future__ import annotations

import shutil

import pytest
import torch

from coderclip.encoders import load_encoder
from coderclip.errors import ModelLoadError, ModelOutputError

from .conftest import assert_one_clean_line, cli


def test_transformers_folder_without_tokenizer_files(capsys, tmp_path, hf_clip_dir, photo, classes_file):
    folder = tmp_path / "no-tokenizer"
    shutil.copytree(hf_clip_dir, folder)
    for name in ("vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json",
                 "special_tokens_map.json"):
        (folder / name).unlink(missing_ok=True)
    code, out, err = cli(capsys, "classify", photo, "-m", f"hf:{folder}", "--classes", classes_file)
    assert_one_clean_line(code, err, 4, str(folder), "tokenizer")
    assert out == ""                        # no uniform 1/C answer printed


def test_random_bytes_checkpoint(capsys, tmp_path, open_clip_dir, photo, classes_file):
    from tests.conftest import TINY_ARCH

    bad = tmp_path / "weights.pt"
    bad.write_bytes(bytes(range(256)) * 40)
    code, _, err = cli(capsys, "classify", photo, "-m", f"open_clip:{TINY_ARCH}:{bad}", "--classes",
                       classes_file)
    assert_one_clean_line(code, err, 4, str(bad), "cannot be used")
    assert "weights_only=False" not in err and "weights_only` set to `False" not in err


class _Boom:
    """Unpickling this runs a shell command that leaves a file behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch '{self.marker}'",))


def test_pickled_code_in_a_checkpoint_is_never_run(tmp_path, open_clip_dir):
    from tests.conftest import TINY_ARCH

    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "payload": _Boom(marker)}, ckpt)
    with pytest.raises(ModelLoadError, match="pickled objects"):
        load_encoder(f"open_clip:{TINY_ARCH}:{ckpt}", device="cpu")
    assert not marker.exists()
    good = load_encoder(f"open_clip:{TINY_ARCH}:{open_clip_dir / 'tiny.pt'}", device="cpu")
    assert good.embed_dim == 32


@pytest.mark.slow
def test_two_random_models_do_not_share_a_cache_identity(open_clip_dir):
    from tests.conftest import TINY_ARCH

    torch.manual_seed(1)
    a = load_encoder(f"open_clip:{TINY_ARCH}", device="cpu")
    torch.manual_seed(2)
    b = load_encoder(f"open_clip:{TINY_ARCH}", device="cpu")
    torch.manual_seed(1)
    a2 = load_encoder(f"open_clip:{TINY_ARCH}", device="cpu")
    assert a.identity != b.identity and a.identity == a2.identity
    assert "random-init" in a.identity


def test_model_that_outputs_nan_is_stopped(open_clip_encoder):
    proj = open_clip_encoder.model.text_projection
    saved = proj.detach().clone()
    try:
        with torch.no_grad():
            proj.fill_(float("nan"))
        with pytest.raises(ModelOutputError, match="NaN or infinite embeddings for 2 of 2 texts"):
            open_clip_encoder.encode_texts(["a lime", "a lemon"])
    finally:
        with torch.no_grad():
            proj.copy_(saved)
    assert torch.isfinite(open_clip_encoder.encode_texts(["a lime"])).all()
