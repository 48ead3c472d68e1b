"""Checking a user's checkpoint file before any library unpickles it.

A ``.pt``/``.bin``/``.ckpt`` file is opened with ``torch.load(weights_only=True)`` (memory-mapped,
so nothing is read twice) whatever the installed torch and open_clip versions default to: a file
that passes holds only tensors and plain containers, so loading it again elsewhere cannot run code.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..errors import ModelLoadError

SAFETENSORS_SUFFIXES = (".safetensors",)


def check_checkpoint(path: str | os.PathLike) -> None:
    """Raise :class:`ModelLoadError` unless ``path`` is safetensors or loads with ``weights_only``."""
    import torch

    p = Path(path)
    if p.suffix.lower() in SAFETENSORS_SUFFIXES:
        return
    try:
        with warnings.catch_warnings():   # torch's notes on pickle protocols are not for users
            warnings.simplefilter("ignore")
            try:
                torch.load(p, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as e:
                if "mmap" not in str(e):
                    raise
                torch.load(p, map_location="cpu", weights_only=True)   # legacy (non-zip) format
    except Exception as e:  # noqa: BLE001 - any failure means: not a checkpoint we can trust
        kind = type(e).__name__
        if "pickle" in kind.lower() or "weights only" in str(e).lower():
            why = ("it is not a plain tensor checkpoint (it is damaged, not a PyTorch file, or "
                   "holds pickled objects, which coderclip never loads)")
        else:
            first = (str(e).strip().splitlines() or [""])[0][:120]
            why = f"it is not a PyTorch checkpoint ({kind}: {first})"
        raise ModelLoadError(
            f"checkpoint {os.fsdecode(p)!r} cannot be used: {why}; save the model's state_dict "
            "as safetensors (safetensors.torch.save_file) or with torch.save(model.state_dict())") from None
