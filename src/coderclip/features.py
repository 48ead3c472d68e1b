"""Precomputed image embeddings on disk (.safetensors, .npy, .npz), so cached features skip the
image tower. No pickle: .npy/.npz are read with ``allow_pickle=False``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from ._io import atomic_write_bytes
from .errors import InputError

FEATURES_FORMAT = "coderclip-features-1"


@dataclasses.dataclass
class FeatureSet:
    """Image embeddings ``[N, D]`` (float32, unit rows) with optional labels ``[N]`` (int64),
    ids (one string per row), class names (label -> name) and the producing model's identity."""

    embeddings: torch.Tensor
    labels: torch.Tensor | None = None
    ids: list[str] | None = None
    class_names: list[str] | None = None
    model: str | None = None

    def __post_init__(self) -> None:
        e = self.embeddings
        if e.ndim != 2:
            raise InputError(f"image embeddings must be a 2-D array [N, D], got shape {tuple(e.shape)}")
        bad = ~torch.isfinite(e).all(dim=1) if e.numel() else torch.zeros(0, dtype=torch.bool)
        if bad.any():
            rows = bad.nonzero().flatten().tolist()
            raise InputError(f"{int(bad.sum())} of {e.shape[0]} image embeddings hold NaN or infinite "
                             f"values (rows {rows[:5]}{' ...' if len(rows) > 5 else ''}); recompute "
                             "them (with --precision fp32 if they came from fp16)")
        self.embeddings = e.float() / e.float().norm(dim=1, keepdim=True).clamp_min(1e-12)
        n = e.shape[0]
        if self.labels is not None and self.labels.shape != (n,):
            raise InputError(f"{n} embeddings but labels of shape {tuple(self.labels.shape)}")
        if self.ids is not None and len(self.ids) != n:
            raise InputError(f"{n} embeddings but {len(self.ids)} ids")

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])


def save_features(path: str | os.PathLike, features: FeatureSet) -> Path:
    """Write ``features`` as a safetensors file (atomic)."""
    from safetensors.torch import save

    tensors = {"embeddings": features.embeddings.detach().cpu().contiguous()}
    if features.labels is not None:
        tensors["labels"] = features.labels.detach().cpu().long().contiguous()
    meta = {"format": FEATURES_FORMAT}
    for key in ("ids", "class_names", "model"):
        value = getattr(features, key)
        if value is not None:
            meta[key] = json.dumps(value)
    path = Path(path)
    atomic_write_bytes(path, save(tensors, metadata=meta))
    return path


def load_features(path: str | os.PathLike) -> FeatureSet:
    """Read embeddings (and labels, ids, class names where the file has them)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"features file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                keys = set(f.keys())
                if "embeddings" not in keys:
                    raise InputError(f"no tensor named 'embeddings' (found {sorted(keys)})")
                emb = f.get_tensor("embeddings")
                labels = f.get_tensor("labels").long() if "labels" in keys else None
            extra = {k: json.loads(meta[k]) for k in ("ids", "class_names", "model") if k in meta}
            return FeatureSet(emb, labels, **extra)
        if suffix == ".npy":
            return FeatureSet(torch.from_numpy(np.load(path, allow_pickle=False)))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "embeddings" not in z.files:
                    raise InputError(f"no array named 'embeddings' (found {z.files})")
                labels = torch.from_numpy(z["labels"]).long() if "labels" in z.files else None
                ids = [str(s) for s in z["ids"]] if "ids" in z.files else None
                names = [str(s) for s in z["class_names"]] if "class_names" in z.files else None
                return FeatureSet(torch.from_numpy(z["embeddings"]), labels, ids, names)
    except InputError as e:
        raise InputError(f"features file {str(path)!r}: {e}") from None
    except Exception as e:
        raise InputError(f"cannot read features file {str(path)!r}: {type(e).__name__}: {e}") from e
    raise InputError(f"unsupported features file type {suffix!r}; use .safetensors, .npy or .npz")
