"""Verified safetensors files: tensors, a small JSON-safe header, lists of strings stored as tensors
(UTF-8 bytes + offsets, so millions of texts never touch the header's 100 MB limit) and a SHA-256
of everything, written atomically. Used by the text-embedding cache, text banks and feature files.

Cost: writing or reading ``n`` strings is ``O(total bytes)`` plus one slice per string.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write_bytes
from .errors import CoderClipError

#: Header key holding the SHA-256 of every tensor (in name order).
CHECKSUM = "sha256"


class StoreError(CoderClipError, OSError):
    """A file could not be read as a verified safetensors file (missing, damaged, not one)."""


def strings_to_tensors(strings: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``strings`` as UTF-8 bytes ``[total]`` (uint8) and offsets ``[n + 1]`` (int64)."""
    encoded = [s.encode("utf-8", "surrogatepass") for s in strings]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    data = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    return torch.from_numpy(data.copy()), torch.from_numpy(offsets)


def tensors_to_strings(data: torch.Tensor, offsets: torch.Tensor) -> list[str]:
    """Inverse of :func:`strings_to_tensors`."""
    buf = data.numpy().tobytes()
    o = offsets.tolist()
    if len(o) == 0 or o[0] != 0 or o[-1] != len(buf) or any(a > b for a, b in zip(o, o[1:])):
        raise ValueError("string offsets do not match the string bytes")
    return [buf[a:b].decode("utf-8", "surrogatepass") for a, b in zip(o, o[1:])]


def checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, shapes, dtypes and bytes (read in place, no copy)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def write(path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, str],
          strings: Mapping[str, Sequence[str]] | None = None) -> Path:
    """Write ``tensors`` (CPU), header ``meta`` and string lists ``strings`` (as ``<name>.bytes`` /
    ``<name>.offsets`` tensors) with a checksum; atomic. Raises :class:`StoreError`."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    for name, values in (strings or {}).items():
        tensors[f"{name}.bytes"], tensors[f"{name}.offsets"] = strings_to_tensors(values)
    header = {**meta, CHECKSUM: checksum(tensors)}
    path = Path(path)
    try:
        atomic_write_bytes(path, save(tensors, metadata=header))
    except OSError as e:
        raise StoreError(f"cannot write {path}: {e.strerror or e}") from e
    except Exception as e:  # safetensors refuses the content (e.g. a header over its size limit)
        raise StoreError(f"cannot write {path}: {type(e).__name__}: {e}") from e
    return path


def read(path: str | os.PathLike, verify: bool | None = True
         ) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, list[str]]]:
    """``(tensors, header, strings)`` of a file written by :func:`write` (``verify=None``: check
    the checksum only when the file has one, e.g. for files written by other tools).

    Any failure (missing file, not safetensors, damaged bytes, checksum mismatch, bad strings)
    raises :class:`StoreError` naming the file and the problem.
    """
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            header = dict(f.metadata() or {})
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except FileNotFoundError:
        raise StoreError(f"{path}: no such file") from None
    except Exception as e:  # SafetensorError, OSError, ValueError...: the file cannot be trusted
        raise StoreError(f"{path} cannot be read as a safetensors file ({type(e).__name__}: {e})") from None
    if verify is None:
        verify = CHECKSUM in header
    if verify and header.get(CHECKSUM) != checksum(tensors):
        raise StoreError(f"{path} is damaged: its checksum does not match its contents")
    strings: dict[str, list[str]] = {}
    for key in [k for k in tensors if k.endswith(".bytes")]:
        name = key[: -len(".bytes")]
        off = tensors.pop(f"{name}.offsets", None)
        data = tensors.pop(key)
        try:
            if off is None:
                raise ValueError("offsets missing")
            strings[name] = tensors_to_strings(data, off)
        except (ValueError, UnicodeDecodeError) as e:
            raise StoreError(f"{path}: its {name!r} strings cannot be decoded ({e})") from None
    return tensors, header, strings
