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

from . import store
from .images import EncodedImages, encode_image_files
from .paths import cache_dir

log = logging.getLogger(__name__)

FEATURE_CACHE_FORMAT = "coderclip-image-features-2"
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


def cache_file(key: dict) -> Path:
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "features" / f"{name}.safetensors"


def _read(path: Path, key: dict, dim: int) -> EncodedImages | None:
    """The cached embeddings, or ``None`` (and the file removed) if the file fails a check."""
    if not path.is_file():
        return None
    try:
        tensors, meta, strings = store.read(path)
    except store.StoreError as e:
        problem = str(e)
    else:
        emb, kept = tensors.get("embeddings"), tensors.get("kept")
        problem = None
        if meta.get("format") != FEATURE_CACHE_FORMAT:
            problem = f"unknown format {meta.get('format')!r}"
        elif json.loads(meta.get("key", "null")) != key:
            problem = "its key does not match"
        elif emb is None or emb.dtype != torch.float32 or emb.ndim != 2 or emb.shape[1] != dim:
            problem = f"its embeddings are not [*, {dim}] float32"
        elif kept is None or kept.dtype != torch.int64 or kept.shape != (emb.shape[0],):
            problem = "its row indices do not match its embeddings"
        elif kept.numel() and (kept.min() < 0 or kept.max() >= key["images"]
                               or bool((kept[1:] <= kept[:-1]).any())):
            problem = "its row indices are out of range"
    if problem:
        log.warning("ignoring and removing cached features %s: %s", path, problem)
        try:
            path.unlink()
        except OSError:
            pass
        return None
    failures = list(zip(strings.get("failure_paths", []), strings.get("failure_reasons", [])))
    return EncodedImages(embeddings=emb, kept=kept.tolist(), failures=failures)


def _write(path: Path, key: dict, enc: EncodedImages) -> None:
    kept = torch.tensor(enc.kept, dtype=torch.int64)
    meta = {"format": FEATURE_CACHE_FORMAT, "key": json.dumps(key, sort_keys=True)}
    store.write(path, {"embeddings": enc.embeddings.to(torch.float32), "kept": kept}, meta,
                strings={"failure_paths": [p for p, _ in enc.failures],
                         "failure_reasons": [r for _, r in enc.failures]})


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
