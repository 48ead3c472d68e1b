"""Precomputed image embeddings on disk (.safetensors, .npy, .npz), so cached features skip the
image tower. No pickle: .npy/.npz are read with ``allow_pickle=False``."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from . import store
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
    """Write ``features`` as a verified safetensors file (atomic); ids and class names are stored
    as string tensors (:mod:`coderclip.store`), so millions of ids fit."""
    tensors = {"embeddings": features.embeddings}
    if features.labels is not None:
        tensors["labels"] = features.labels.long()
    meta = {"format": FEATURES_FORMAT}
    if features.model is not None:
        meta["model"] = json.dumps(features.model)
    strings = {k: getattr(features, k) for k in ("ids", "class_names") if getattr(features, k) is not None}
    return store.write(path, tensors, meta, strings=strings)


def load_features(path: str | os.PathLike) -> FeatureSet:
    """Read embeddings (and labels, ids, class names where the file has them)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"features file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            tensors, meta, strings = store.read(path, verify=None)
            if "embeddings" not in tensors:
                raise InputError(f"no tensor named 'embeddings' (found {sorted(tensors)})")
            labels = tensors["labels"].long() if "labels" in tensors else None
            extra = {k: json.loads(meta[k]) for k in ("ids", "class_names", "model") if k in meta}
            extra.update(strings)   # ids / class names stored as string tensors
            return FeatureSet(tensors["embeddings"], labels, **extra)
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


class FeatureRows:
    """Embeddings of a features file read block by block: ``rows[start:stop]`` is a float32 tensor
    ``[stop - start, D]`` read from disk on demand (safetensors slices, or a memory-mapped ``.npy``),
    so classifying a file of a million embeddings never holds them all. ``ids`` and ``model`` as
    in :class:`FeatureSet`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.ids: list[str] | None = None
        self.model: str | None = None
        suffix = self.path.suffix.lower()
        if not self.path.is_file():
            raise InputError(f"features file {str(self.path)!r} does not exist")
        if suffix == ".safetensors":
            from safetensors import safe_open

            try:
                self._file = safe_open(str(self.path), framework="pt")
                self._rows = self._file.get_slice("embeddings")
                meta = self._file.metadata() or {}
                names = set(self._file.keys())
            except Exception as e:
                raise InputError(f"cannot read features file {str(self.path)!r}: "
                                  f"{type(e).__name__}: {e}") from None
            self.shape = tuple(self._rows.get_shape())
            if "ids.bytes" in names:
                self.ids = store.tensors_to_strings(self._file.get_tensor("ids.bytes"),
                                                    self._file.get_tensor("ids.offsets"))
            elif "ids" in meta:
                self.ids = json.loads(meta["ids"])
            self.model = json.loads(meta["model"]) if "model" in meta else None
        elif suffix == ".npy":
            try:
                self._rows = np.load(self.path, mmap_mode="r", allow_pickle=False)
            except Exception as e:
                raise InputError(f"cannot read features file {str(self.path)!r}: "
                                  f"{type(e).__name__}: {e}") from None
            self.shape = tuple(self._rows.shape)
        else:   # .npz and anything else: read whole
            fs = load_features(self.path)
            self._rows, self.ids, self.model = fs.embeddings, fs.ids, fs.model
            self.shape = tuple(fs.embeddings.shape)
        if len(self.shape) != 2:
            raise InputError(f"{self.path}: embeddings must be a 2-D array [N, D], got shape {self.shape}")
        if self.ids is not None and len(self.ids) != self.shape[0]:
            raise InputError(f"{self.path}: {self.shape[0]} embeddings but {len(self.ids)} ids")

    @property
    def ndim(self) -> int:
        return 2

    def __len__(self) -> int:
        return int(self.shape[0])

    def __getitem__(self, index: slice) -> torch.Tensor:
        """Rows ``index`` as float32 ``[n, D]``; rows holding NaN or infinite values are refused
        with their row numbers (checked block by block, as they are read)."""
        block = self._rows[index]
        if isinstance(block, torch.Tensor):
            block = block.to(torch.float32)
        else:
            block = torch.from_numpy(np.array(block, dtype=np.float32))   # a copy of this block only
        bad = ~torch.isfinite(block).all(dim=1) if block.numel() else torch.zeros(0, dtype=torch.bool)
        if bad.any():
            start = (index.start or 0) if isinstance(index, slice) else 0
            rows = (bad.nonzero().flatten() + start).tolist()
            raise InputError(f"{self.path}: {int(bad.sum())} image embeddings hold NaN or infinite "
                             f"values (rows {rows[:5]}{' ...' if len(rows) > 5 else ''}); recompute "
                             "them (with --precision fp32 if they came from fp16)")
        return block


def open_features(path: str | os.PathLike) -> FeatureRows:
    """A features file opened for reading block by block (see :class:`FeatureRows`)."""
    return FeatureRows(path)
