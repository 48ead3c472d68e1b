"""Shared fixtures: tiny randomly initialised models saved to disk and loaded back through the same
code paths a user's checkpoint takes, real image files, and an isolated cache."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

TINY_OPEN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
TINY_ARCH = "coderclip-tiny-test"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty coderclip cache and never touches the network."""
    monkeypatch.setenv("CODERCLIP_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from coderclip.encoders import hub

    hub.host_reachable.cache_clear()
    yield
    hub.host_reachable.cache_clear()


@pytest.fixture(scope="session")
def open_clip_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny open_clip model saved as a local folder (config + safetensors)
    and as a plain checkpoint for a registered architecture name."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    d = tmp_path_factory.mktemp("open_clip_tiny")
    cfg_file = d / f"{TINY_ARCH}.json"
    cfg_file.write_text(json.dumps(TINY_OPEN_CLIP))
    open_clip.add_model_config(cfg_file)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_ARCH)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    folder = d / "local"
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": TINY_OPEN_CLIP,
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073],
                           "std": [0.26862954, 0.26130258, 0.27577711]}}))
    save_file(state, str(folder / "open_clip_model.safetensors"))
    torch.save(state, d / "tiny.pt")
    return d


@pytest.fixture(scope="session")
def open_clip_spec(open_clip_dir) -> str:
    return f"open_clip:local-dir:{open_clip_dir / 'local'}"


@pytest.fixture(scope="session")
def open_clip_encoder(open_clip_spec):
    from coderclip.encoders import load_encoder

    return load_encoder(open_clip_spec, device="cpu")


def _clip_tokenizer(folder: Path):
    """A real CLIPTokenizer built from the BPE vocabulary that ships inside open_clip."""
    from open_clip.tokenizer import SimpleTokenizer
    from transformers import CLIPTokenizer

    simple = SimpleTokenizer()
    vocab = folder / "vocab.json"
    merges = folder / "merges.txt"
    vocab.write_text(json.dumps(simple.encoder), encoding="utf-8")
    ranked = sorted(simple.bpe_ranks.items(), key=lambda kv: kv[1])
    merges.write_text("#version: 0.2\n" + "\n".join(" ".join(pair) for pair, _ in ranked) + "\n",
                      encoding="utf-8")
    return CLIPTokenizer(str(vocab), str(merges))


@pytest.fixture(scope="session")
def hf_clip_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny transformers CLIPModel with tokenizer and image processor."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    d = tmp_path_factory.mktemp("hf_clip_tiny")
    tok = _clip_tokenizer(d)
    cfg = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2,
                         num_hidden_layers=2, vocab_size=len(tok), max_position_embeddings=77,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2,
                           num_hidden_layers=2, image_size=32, patch_size=8),
        projection_dim=24)
    torch.manual_seed(0)
    CLIPModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def hf_siglip_dir(tmp_path_factory) -> Path:
    """A randomly initialised tiny SiglipModel (fixed-length text padding, no attention mask)."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    d = tmp_path_factory.mktemp("hf_siglip_tiny")
    tok = _clip_tokenizer(d)
    cfg = SiglipConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2,
                         num_hidden_layers=2, vocab_size=len(tok), max_position_embeddings=16,
                         pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                         bos_token_id=tok.bos_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2,
                           num_hidden_layers=2, image_size=32, patch_size=8))
    torch.manual_seed(0)
    SiglipModel(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def image_files(tmp_path_factory) -> dict[str, Path]:
    """Real image files of several kinds, plus broken ones."""
    import numpy as np
    from PIL import Image

    d = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    out = {}
    out["jpeg"] = d / "photo.jpg"
    rgb.save(out["jpeg"], quality=90)
    out["png"] = d / "photo.png"
    rgb.save(out["png"])
    out["gray"] = d / "gray.png"
    rgb.convert("L").save(out["gray"])
    out["rgba"] = d / "alpha.png"
    rgba = rgb.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(out["rgba"])
    out["truncated"] = d / "truncated.jpg"
    data = out["jpeg"].read_bytes()
    out["truncated"].write_bytes(data[: len(data) // 2])
    out["not_image"] = d / "notes.jpg"
    out["not_image"].write_text("this is not an image")
    return out


def sample_photos_dir() -> Path | None:
    """The 100 labelled sample photos shipped inside the foolbox package (found without importing
    it: foolbox is installed without its dependencies)."""
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    return d if d.is_dir() else None


@pytest.fixture(scope="session")
def sample_photos() -> Path:
    d = sample_photos_dir()
    if d is None:
        pytest.fail("foolbox sample photos are missing: run `make test`, which installs them")
    return d


@pytest.fixture
def small_knowledge():
    from coderclip.knowledge import ClassKnowledge, Knowledge

    return Knowledge([
        ClassKnowledge("lime", synonyms=["key lime"], attributes=["green peel", "small round shape"],
                       analogous=["tennis ball"], contrasts={"lemon": ["dark green skin"]}),
        ClassKnowledge("lemon", synonyms=[], attributes=["yellow peel", "oval shape", "pointed ends"],
                       analogous=["grapefruit", "yellow egg"],
                       contrasts={"lime": ["bright yellow skin", "pointed tips"]}),
        ClassKnowledge("orange", synonyms=["sweet orange"], attributes=["orange peel"],
                       analogous=["tangerine"], contrasts={}),
    ], domain="food", name="citrus")


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")
