"""Encoders: turn a model spec string into an :class:`Encoder`.

Spec strings (``BACKEND:REST``):

* ``open_clip:ARCH:PRETRAINED`` — ``open_clip:ViT-B-32:openai``, ``open_clip:ViT-L-14:/path/ckpt.pt``,
  ``open_clip:hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K``
* ``hf:ID_OR_FOLDER`` — a Hugging Face ``CLIPModel`` / ``SiglipModel`` hub id or local folder
* ``testbed`` — the small trained CLIP-style model shipped with coderclip (offline demo)

Backends are registered in :data:`BACKENDS`; one entry per backend, no ``if`` chains.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import ConfigError
from .base import Encoder
from .device import resolve_device, resolve_dtype

#: backend prefix -> factory(rest_of_spec, device=..., precision=...) -> Encoder
BACKENDS: dict[str, Callable[..., Encoder]] = {}


def register_backend(prefix: str, factory: Callable[..., Encoder]) -> None:
    BACKENDS[prefix] = factory


def _open_clip(rest: str, **kw) -> Encoder:
    from .openclip import OpenClipEncoder

    arch, sep, pretrained = rest.partition(":")
    if rest.startswith(("hf-hub:", "local-dir:")):
        arch, pretrained = rest, None
    elif not sep:
        pretrained = None
    return OpenClipEncoder(arch, pretrained, **kw)


def _hf(rest: str, **kw) -> Encoder:
    from .hf import HFClipEncoder

    return HFClipEncoder(rest, **kw)


def _testbed(rest: str, **kw) -> Encoder:
    from ..testbed.model import load_testbed_encoder

    return load_testbed_encoder(rest or None, **kw)


register_backend("open_clip", _open_clip)
register_backend("hf", _hf)
register_backend("testbed", _testbed)


def load_encoder(spec: str, device: str | None = None, precision: str | None = None) -> Encoder:
    """Load an encoder from a spec string (see module docstring).

    ``device``: ``cuda``, ``mps``, ``cpu`` or ``None`` for the best available. ``precision``:
    ``fp32``, ``fp16``, ``bf16`` or ``None`` (fp16 on CUDA/MPS, fp32 on CPU).
    """
    prefix, _, rest = spec.partition(":")
    factory = BACKENDS.get(prefix)
    if factory is None:
        raise ConfigError(
            f"unknown model spec {spec!r}: it must start with one of "
            f"{', '.join(p + ':' for p in BACKENDS)} (e.g. 'open_clip:ViT-B-32:openai', "
            "'hf:openai/clip-vit-base-patch32', 'testbed')")
    return factory(rest, device=device, precision=precision)


__all__ = ["BACKENDS", "Encoder", "load_encoder", "register_backend", "resolve_device", "resolve_dtype"]
