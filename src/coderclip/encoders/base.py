"""The encoder interface every backend implements: batches of images or texts in, L2-normalised
embeddings out."""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from typing import Any

import torch
from PIL import Image

ImageInput = Image.Image | torch.Tensor


class Encoder(abc.ABC):
    """A CLIP-style dual encoder.

    Subclasses set ``name`` (human-readable), ``identity`` (a string that changes whenever the
    embeddings could change: architecture, weights fingerprint, precision; used as the cache key),
    ``embed_dim``, ``device`` and ``dtype``, and implement the two ``_encode_*_batch`` methods.
    Both public ``encode_*`` methods return float32 tensors ``[N, embed_dim]`` with unit rows, on
    ``device``.
    """

    name: str
    identity: str
    embed_dim: int
    device: torch.device
    dtype: torch.dtype
    #: PIL image -> preprocessed tensor ``[3, H, W]`` (what ``_encode_image_batch`` expects stacked).
    preprocess: Callable[[Image.Image], torch.Tensor]
    #: The tokenizer's fixed context length, if any (informational).
    context_length: int | None = None
    #: How the model itself turns cosine similarities into probabilities (used by the CLIP
    #: baselines): logits ``logit_scale · cos + logit_bias``, then a softmax over the classes
    #: (CLIP) or a sigmoid per class (SigLIP, ``probability = "sigmoid"``). Backends read them from
    #: the weights (:func:`read_logit_scale`); a model without them gets CLIP's usual 100, softmax.
    logit_scale: float = 100.0
    logit_bias: float = 0.0
    probability: str = "softmax"

    # ------------------------------------------------------------------ to implement
    @abc.abstractmethod
    def _encode_image_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``[B, 3, H, W]`` on ``device`` -> raw (unnormalised) embeddings ``[B, D]``."""

    @abc.abstractmethod
    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        """Texts -> raw (unnormalised) embeddings ``[B, D]`` on ``device``."""

    # ------------------------------------------------------------------ public API
    @torch.inference_mode()
    def encode_images(self, images: Sequence[ImageInput] | torch.Tensor, batch_size: int = 64,
                      show_progress_bar: bool = False) -> torch.Tensor:
        """Embed images given as PIL images, preprocessed tensors ``[3, H, W]`` or one tensor
        ``[N, 3, H, W]`` (one PIL image is one image); returns ``[N, D]`` float32 unit vectors on
        ``device``."""
        if isinstance(images, Image.Image):
            images = [images]
        n = len(images)
        out = torch.empty(n, self.embed_dim, dtype=torch.float32, device=self.device)
        for start in _progress(range(0, n, batch_size), show_progress_bar, "images", n, batch_size):
            chunk = images[start:start + batch_size]
            if isinstance(chunk, torch.Tensor):
                pixels = chunk
            else:
                pixels = torch.stack([self.preprocess(im) if isinstance(im, Image.Image) else im
                                      for im in chunk])
            pixels = pixels.to(self.device, self.dtype, non_blocking=True)
            out[start:start + len(chunk)] = _finite(_normalize(self._encode_image_batch(pixels)),
                                                    self, "images")
        return out

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256,
                     show_progress_bar: bool = False) -> torch.Tensor:
        """Embed texts; returns ``[N, D]`` float32 unit vectors on ``device``.

        Texts are processed in length-sorted batches, longest first, so that padding stays small
        and the largest batch (the memory peak) comes first; the output is in the input order.
        One string is one text (``encode_texts("a dog")`` is ``[1, D]``).
        """
        texts = [texts] if isinstance(texts, str) else list(texts)
        n = len(texts)
        out = torch.empty(n, self.embed_dim, dtype=torch.float32, device=self.device)
        order = sorted(range(n), key=lambda i: -len(texts[i]))
        for start in _progress(range(0, n, batch_size), show_progress_bar, "texts", n, batch_size):
            idx = order[start:start + batch_size]
            emb = self._encode_text_batch([texts[i] for i in idx])
            out[torch.as_tensor(idx, device=self.device)] = _finite(_normalize(emb), self, "texts")
        return out

    def describe(self) -> dict[str, Any]:
        """What produced the embeddings, for reports."""
        return {"name": self.name, "identity": self.identity, "embed_dim": self.embed_dim,
                "device": str(self.device), "dtype": str(self.dtype).replace("torch.", ""),
                "logit_scale": self.logit_scale, "logit_bias": self.logit_bias,
                "probability": self.probability}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, dim={self.embed_dim}, device={self.device}, dtype={self.dtype})"


def read_logit_scale(model) -> tuple[float, float, str]:
    """``(logit_scale, logit_bias, probability)`` learned by an open_clip or transformers model.

    Both libraries keep the scale as its logarithm (``logit_scale.exp()`` is the multiplier); a
    model with a learned bias (SigLIP) is trained with a sigmoid loss, so its probabilities are
    per-class sigmoids. Models without the parameters get (100, 0, softmax).
    """
    scale = getattr(model, "logit_scale", None)
    bias = getattr(model, "logit_bias", None)
    if not isinstance(scale, torch.Tensor):
        return 100.0, 0.0, "softmax"
    value = float(scale.detach().float().exp().reshape(-1)[0])
    if isinstance(bias, torch.Tensor):
        return value, float(bias.detach().float().reshape(-1)[0]), "sigmoid"
    return value, 0.0, "softmax"


def _normalize(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _finite(x: torch.Tensor, encoder: Encoder, what: str) -> torch.Tensor:
    """``x`` unchanged, or :class:`ModelOutputError` if any row holds NaN or inf."""
    bad = ~torch.isfinite(x).all(dim=1)
    if bool(bad.any()):
        from ..errors import ModelOutputError

        raise ModelOutputError(
            f"the model {encoder.name} produced NaN or infinite embeddings for {int(bad.sum())} of "
            f"{x.shape[0]} {what} in a batch ({str(encoder.dtype).replace('torch.', '')}); try "
            "--precision fp32, and check that the weights are not damaged")
    return x


def _progress(it, enabled: bool, what: str, n: int, batch_size: int):
    if not enabled:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, total=(n + batch_size - 1) // batch_size, desc=f"encoding {n} {what}",
                unit="batch", leave=False)
