"""Choosing a device and a floating-point precision."""

from __future__ import annotations

import torch

from ..errors import ConfigError

_PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """The requested device, or the best available one (cuda, then mps, then cpu)."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"invalid device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was requested but CUDA is not available here")
    return dev


def resolve_dtype(precision: str | None, device: torch.device) -> torch.dtype:
    """fp16 on accelerators and fp32 on CPU unless ``precision`` says otherwise."""
    if precision is None or precision == "auto":
        return torch.float32 if device.type == "cpu" else torch.float16
    try:
        return _PRECISIONS[precision]
    except KeyError:
        raise ConfigError(f"invalid precision {precision!r}; expected one of {', '.join(_PRECISIONS)}") from None
