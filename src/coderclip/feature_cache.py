"""On-disk cache of a dataset split's image embeddings, so that evaluating again with other texts,
knowledge or settings does not run the image tower again.

Key: the encoder's identity (architecture, weights fingerprint, precision, device type), the
dataset name and split, a SHA-256 of the file list (relative path, size and modification time of
every image) and a SHA-256 of the preprocessing. One safetensors file per key under
``$CODERCLIP_CACHE/features/``: ``embeddings`` ``[M, D]`` (float32, unit rows), ``kept`` ``[M]``
(index of each row's image in the dataset; unreadable images are skipped) and, in the metadata,
the key, the skipped images and a SHA-256 of the tensors. Files are written atomically and
verified on every load; a file that fails a check is removed and the images are encoded again.
Labels are never stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import torch

from .paths import cache_dir
from .images import EncodedImages, encode_image_files
from ._io import atomic_write_bytes

log = logging.getLogger(__name__)

FEATURE_CACHE_FORMAT = "coderclip-image-features-1"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def file_list_digest(paths, root: str | os.PathLike | None = None) -> str:
    """SHA-256 of the ordered file list: each file's path (relative to ``root`` when inside it),
    size and modification time. Missing files count as size -1."""
    h = hashlib.sha256()
    base = Path(root) if root is not None else None
    for p in paths:
        p = Path(p)
        rel = str(p)
        if base is not None:
            try:
                rel = str(p.relative_to(base))
            except ValueError:
                pass
        try:
            st = p.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:
            size, mtime = -1, 0
        h.update(f"{rel}\0{size}\0{mtime}\n".encode())
    return h.hexdigest()


def preprocessing_description(encoder) -> str:
    """A stable text describing how the encoder turns an image into pixels."""
    processor = getattr(encoder, "image_processor", None)
    if processor is not None and hasattr(processor, "to_json_string"):
        return processor.to_json_string()
    return _ADDRESS.sub("", repr(getattr(encoder, "preprocess", None)))


def feature_cache_key(encoder, dataset) -> dict:
    """What the cached embeddings of ``dataset`` under ``encoder`` depend on."""
    return {
        "format": FEATURE_CACHE_FORMAT,
        "encoder": encoder.identity,
        "dataset": dataset.name,
        "split": dataset.split,
        "images": len(dataset.paths),
        "files_sha256": file_list_digest(dataset.paths, dataset.root if dataset.root and
                                         os.path.isdir(dataset.root) else None),
        "preprocessing_sha256": hashlib.sha256(preprocessing_description(encoder).encode()).hexdigest(),
    }


@dataclasses.dataclass
class CachedFeatures:
    """Embeddings of a dataset split and where they came from."""

    encoded: EncodedImages
    hit: bool
    path: Path | None
    key: dict


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_file(key: dict) -> Path:
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "features" / f"{name}.safetensors"


def _read(path: Path, key: dict, dim: int) -> EncodedImages | None:
    """The cached embeddings, or ``None`` (and the file removed) if the file fails a check."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            emb, kept = f.get_tensor("embeddings"), f.get_tensor("kept")
        problem = None
        if meta.get("format") != FEATURE_CACHE_FORMAT:
            problem = f"unknown format {meta.get('format')!r}"
        elif json.loads(meta.get("key", "null")) != key:
            problem = "its key does not match"
        elif emb.dtype != torch.float32 or emb.ndim != 2 or emb.shape[1] != dim:
            problem = f"its embeddings have shape {tuple(emb.shape)}, expected [*, {dim}]"
        elif kept.dtype != torch.int64 or kept.shape != (emb.shape[0],):
            problem = "its row indices do not match its embeddings"
        elif kept.numel() and (kept.min() < 0 or kept.max() >= key["images"]
                               or bool((kept[1:] <= kept[:-1]).any())):
            problem = "its row indices are out of range"
        elif _digest(emb, kept) != meta.get("sha256"):
            problem = "its checksum does not match"
        failures = [tuple(x) for x in json.loads(meta.get("failures", "[]"))]
    except Exception as e:  # any parse failure means the file cannot be trusted
        problem = f"it cannot be read ({type(e).__name__}: {e})"
    if problem:
        log.warning("ignoring and removing cached features %s: %s", path, problem)
        try:
            path.unlink()
        except OSError:
            pass
        return None
    return EncodedImages(embeddings=emb, kept=kept.tolist(), failures=failures)


def _write(path: Path, key: dict, enc: EncodedImages) -> None:
    from safetensors.torch import save

    emb = enc.embeddings.detach().to("cpu", torch.float32).contiguous()
    kept = torch.tensor(enc.kept, dtype=torch.int64)
    meta = {"format": FEATURE_CACHE_FORMAT, "key": json.dumps(key, sort_keys=True),
            "failures": json.dumps([list(x) for x in enc.failures]), "sha256": _digest(emb, kept)}
    atomic_write_bytes(path, save({"embeddings": emb, "kept": kept}, metadata=meta))


def encode_dataset(encoder, dataset, *, batch_size: int = 64, num_workers: int | None = None,
                   cache: bool = True, show_progress_bar: bool = False) -> CachedFeatures:
    """Embeddings of every readable image of ``dataset`` (an :class:`~coderclip.datasets.ImageDataset`),
    from the cache when an identical run stored them, else encoded (and stored)."""
    key = feature_cache_key(encoder, dataset)
    path = cache_file(key) if cache else None
    if path is not None:
        enc = _read(path, key, encoder.embed_dim)
        if enc is not None:
            log.info("image features of %s/%s from cache %s", dataset.name, dataset.split, path)
            enc.embeddings = enc.embeddings.to(encoder.device)
            return CachedFeatures(enc, True, path, key)
    enc = encode_image_files(encoder, dataset.paths, batch_size=batch_size, num_workers=num_workers,
                             show_progress_bar=show_progress_bar)
    if path is not None:
        try:
            _write(path, key, enc)
        except OSError as e:
            log.warning("could not write the feature cache %s (%s); continuing without it", path,
                        e.strerror or e)
            path = None
    return CachedFeatures(enc, False, path, key)
