"""Loading weights once in memory: same model as the libraries' own loaders, nothing left on the
meta device, and a clear error when a checkpoint does not match its architecture."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from coderclip.encoders import load_encoder
from coderclip.encoders.weights import assign_weights, parameters_on_meta, read_state_dict
from coderclip.errors import ModelLoadError

from .conftest import TINY_ARCH

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _no_meta(model: torch.nn.Module) -> None:
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    assert tensors and not [n for n, t in tensors if t.is_meta]


def _same_outputs(a, b, image_size: int) -> None:
    import open_clip

    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(3, 3, image_size, image_size, generator=g)
    tokens = open_clip.tokenize(["a dog", "a photo of a small red bird on a branch."])
    with torch.inference_mode():
        assert torch.equal(a.encode_image(pixels), b.encode_image(pixels))
        assert torch.equal(a.encode_text(tokens), b.encode_text(tokens))


@pytest.mark.parametrize("kind", ["local-dir", "pt"])
def test_open_clip_load_matches_open_clip_exactly(open_clip_dir, kind):
    import open_clip

    if kind == "local-dir":
        spec, args = f"open_clip:local-dir:{open_clip_dir / 'local'}", (f"local-dir:{open_clip_dir / 'local'}",)
    else:
        spec, args = f"open_clip:{TINY_ARCH}:{open_clip_dir / 'tiny.pt'}", (TINY_ARCH, str(open_clip_dir / "tiny.pt"))
    enc = load_encoder(spec, device="cpu")
    reference, _, _ = open_clip.create_model_and_transforms(*args)
    _no_meta(enc.model)
    assert torch.equal(enc.model.attn_mask, reference.attn_mask)  # a recomputed, unsaved buffer
    _same_outputs(enc.model, reference.eval(), 32)


def test_half_precision_checkpoint_is_cast_like_open_clip(open_clip_dir, tmp_path):
    import open_clip
    from safetensors.torch import save_file

    state = read_state_dict(open_clip_dir / "local" / "open_clip_model.safetensors")
    ckpt = tmp_path / "half.safetensors"
    save_file({k: v.half() for k, v in state.items()}, str(ckpt))
    enc = load_encoder(f"open_clip:{TINY_ARCH}:{ckpt}", device="cpu")
    reference, _, _ = open_clip.create_model_and_transforms(TINY_ARCH, pretrained=str(ckpt))
    assert {p.dtype for p in enc.model.parameters()} == {torch.float32}
    _same_outputs(enc.model, reference.eval(), 32)


def _folder_with_state(src: Path, dst: Path, edit) -> Path:
    from safetensors.torch import save_file

    shutil.copytree(src, dst)
    state = read_state_dict(dst / "open_clip_model.safetensors")
    edit(state)
    save_file({k: v.contiguous() for k, v in state.items()}, str(dst / "open_clip_model.safetensors"))
    return dst


def test_missing_weight_is_an_error_naming_file_and_key(open_clip_dir, tmp_path):
    folder = _folder_with_state(open_clip_dir / "local", tmp_path / "m",
                                lambda s: s.pop("text_projection"))
    with pytest.raises(ModelLoadError, match=r"open_clip_model\.safetensors.*missing \(text_projection\)"):
        load_encoder(f"open_clip:local-dir:{folder}", device="cpu")


def test_unexpected_weight_is_an_error(open_clip_dir, tmp_path):
    folder = _folder_with_state(open_clip_dir / "local", tmp_path / "u",
                                lambda s: s.update({"head.extra": torch.zeros(3)}))
    with pytest.raises(ModelLoadError, match=r"not in the model \(head\.extra\)"):
        load_encoder(f"open_clip:local-dir:{folder}", device="cpu")


def test_wrong_shape_is_an_error(open_clip_dir, tmp_path):
    folder = _folder_with_state(open_clip_dir / "local", tmp_path / "s",
                                lambda s: s.update({"visual.proj": torch.zeros(5, 4)}))
    with pytest.raises(ModelLoadError, match=r"another shape \(visual\.proj"):
        load_encoder(f"open_clip:local-dir:{folder}", device="cpu")


def test_config_without_weights_is_an_error_not_a_random_model(open_clip_dir, tmp_path):
    folder = tmp_path / "config-only"
    folder.mkdir()
    shutil.copy(open_clip_dir / "local" / "open_clip_config.json", folder)
    with pytest.raises(ModelLoadError, match=r"config-only.*no weights file"):
        load_encoder(f"open_clip:local-dir:{folder}", device="cpu")


def test_assign_weights_refuses_to_leave_meta_tensors():
    with parameters_on_meta():
        model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    model[0].register_buffer("scale", torch.empty(2, device="meta"), persistent=False)
    assert all(p.is_meta for p in model.parameters())
    with pytest.raises(ModelLoadError, match=r"without values \(0\.scale\)"):
        assign_weights(model, {"0.weight": torch.ones(2, 3), "0.bias": torch.zeros(2)}, "x.pt")
    assert model[0].weight.data_ptr() != 0 and not model[0].weight.is_meta


def test_parameters_on_meta_is_undone_afterwards():
    with parameters_on_meta():
        inside = torch.nn.Linear(2, 2)
    assert inside.weight.is_meta
    assert not torch.nn.Linear(2, 2).weight.is_meta


def test_hf_missing_weight_is_an_error(hf_clip_dir, tmp_path):
    from safetensors.torch import save_file

    folder = tmp_path / "hf"
    shutil.copytree(hf_clip_dir, folder)
    state = read_state_dict(folder / "model.safetensors")
    state.pop("text_projection.weight")
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match=r"missing \(text_projection\.weight\)"):
        load_encoder(f"hf:{folder}", device="cpu")


def test_hf_folder_without_tokenizer_is_an_error(hf_clip_dir, tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(hf_clip_dir, folder)
    for name in ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match=r"has no tokenizer"):
        load_encoder(f"hf:{folder}", device="cpu")


def test_hf_folder_without_weights_is_an_error(hf_clip_dir, tmp_path):
    folder = tmp_path / "hf"
    shutil.copytree(hf_clip_dir, folder)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"config\.json but no weights"):
        load_encoder(f"hf:{folder}", device="cpu")


def _imported_after_load(spec: str) -> dict:
    code = ("import json, sys; from coderclip.encoders import load_encoder; "
            f"load_encoder({spec!r}, device='cpu'); "
            "print(json.dumps({m: m in sys.modules for m in ('open_clip', 'transformers', 'timm')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": SRC, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_open_clip_model_does_not_import_transformers(open_clip_dir):
    assert _imported_after_load(f"open_clip:local-dir:{open_clip_dir / 'local'}") == \
        {"open_clip": True, "transformers": False, "timm": False}


@pytest.mark.slow
def test_transformers_model_does_not_import_open_clip(hf_clip_dir):
    assert _imported_after_load(f"hf:{hf_clip_dir}") == {"open_clip": False, "transformers": True,
                                                          "timm": False}


def _fresh_python(code: str) -> list[str]:
    """The words ``code`` prints in a fresh interpreter (nothing imported before it)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": SRC})
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@pytest.mark.slow
def test_transformers_is_loaded_into_open_clip_when_a_model_needs_it():
    assert _fresh_python(
        "import sys; from coderclip.encoders.openclip import import_open_clip; "
        "oc = import_open_clip(); before = oc.hf_model.transformers is None; "
        "oc = import_open_clip(needs_transformers=True); "
        "print(before, oc.hf_model.AutoConfig is sys.modules['transformers'].AutoConfig)") == ["True", "True"]


@pytest.mark.slow
def test_timm_is_loaded_into_open_clip_when_a_model_needs_it():
    assert _fresh_python(
        "import sys; from coderclip.encoders.openclip import import_open_clip, _model_config, _needs_timm; "
        "oc = import_open_clip(); before = oc.timm_model.timm is None; "
        "needs = (_needs_timm(_model_config('ViT-B-32')), _needs_timm(_model_config('convnext_base'))); "
        "oc = import_open_clip(needs_timm=True); "
        "print(before, oc.timm_model.timm is sys.modules['timm'], *needs)") == ["True", "True", "False", "True"]


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_low_precision_load_matches_open_clip(open_clip_dir, precision):
    import open_clip

    from coderclip.encoders.openclip import OpenClipEncoder

    folder = f"local-dir:{open_clip_dir / 'local'}"
    enc = OpenClipEncoder(folder, device="cpu", precision=precision)
    reference, _, _ = open_clip.create_model_and_transforms(folder, precision=precision)
    _no_meta(enc.model)
    ours = {n: t.dtype for n, t in enc.model.state_dict().items()}
    assert ours == {n: t.dtype for n, t in reference.state_dict().items()}
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    g = torch.Generator().manual_seed(1)
    pixels = torch.randn(2, 3, 32, 32, generator=g).to(dtype)
    with torch.inference_mode():
        assert torch.equal(enc.model.encode_image(pixels), reference.eval().encode_image(pixels))
