"""On-disk cache of a dataset split's image embeddings, written in shards as encoding goes, so that
evaluating again with other texts, knowledge or settings does not run the image tower again, and a
run killed while encoding resumes from the shards it finished.

Key: the encoder's identity (architecture, weights fingerprint, precision, device type), the
dataset name and split, a SHA-256 of the file list (relative path, size and modification time of
every image), a SHA-256 of the preprocessing, where JPEGs are decoded (``cpu`` or ``device``) and
the shard size. One folder per key, ``$CODERCLIP_CACHE/features/<sha256 of the key>/``, holding
``manifest.json`` (the key, the shard size, the number of shards) and ``shard-<i>.safetensors``.
Shard ``i`` covers the dataset indices ``[i·S, (i+1)·S)`` (``S`` = :data:`SHARD_IMAGES` images), so
it depends only on the dataset's order. Each shard (:mod:`coderclip.store`) holds ``embeddings``
``[m, D]`` (float32, unit rows), ``kept`` ``[m]`` (dataset index of each row; unreadable images
are skipped), the skipped images and their reasons, the key and a SHA-256 of it all. A shard is
written atomically as soon as its images are encoded and verified on every read; one that fails a
check (damaged, written under another key or format) is removed with one warning and its images
are encoded again. Files of earlier formats (``features/<hash>.safetensors``) are never read and
never removed. Labels are never stored.

Reading: :func:`stream_features` yields ``(kept indices, embeddings)`` batches in dataset order,
reading finished shards and encoding (and writing) the missing ones on the fly; memory holds one
shard at most, never the split. :func:`encode_dataset` gathers a whole split ``[M, D]``, for small
splits (validation sets, few-shot splits).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from . import store
from ._io import atomic_write_text
from .errors import CacheError, ConfigError
from .images import EncodedImages, iter_encoded_batches
from .paths import cache_dir

log = logging.getLogger(__name__)

FEATURE_CACHE_FORMAT = "coderclip-image-features-3"
#: Images per shard: at 512 dimensions a shard holds 32 MiB of embeddings.
SHARD_IMAGES = 16_384
MANIFEST = "manifest.json"
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
        h.update(os.fsencode(rel) + f"\0{size}\0{mtime}\n".encode())   # names need not be UTF-8
    return h.hexdigest()


def preprocessing_description(encoder) -> str:
    """A stable text describing how the encoder turns an image into pixels."""
    processor = getattr(encoder, "image_processor", None)
    if processor is not None and hasattr(processor, "to_json_string"):
        return processor.to_json_string()
    return _ADDRESS.sub("", repr(getattr(encoder, "preprocess", None)))


def feature_cache_key(encoder, dataset, *, decode: str = "cpu", shard_images: int | None = None) -> dict:
    """What the cached embeddings of ``dataset`` under ``encoder`` depend on (``decode``: see
    :func:`~coderclip.images.iter_encoded_batches`; ``shard_images``: default
    :data:`SHARD_IMAGES`)."""
    shard_images = SHARD_IMAGES if shard_images is None else shard_images
    if decode not in ("cpu", "device"):
        raise ConfigError(f"invalid decode {decode!r}; expected 'cpu' or 'device'")
    if int(shard_images) < 1:
        raise ConfigError(f"shard_images must be at least 1, got {shard_images}")
    return {
        "format": FEATURE_CACHE_FORMAT,
        "encoder": encoder.identity,
        "dataset": dataset.name,
        "split": dataset.split,
        "images": len(dataset.paths),
        "files_sha256": file_list_digest(dataset.paths, dataset.root if dataset.root and
                                         os.path.isdir(dataset.root) else None),
        "preprocessing_sha256": hashlib.sha256(preprocessing_description(encoder).encode()).hexdigest(),
        "decode": decode,
        "shard_images": int(shard_images),
    }


def cache_folder(key: dict) -> Path:
    """The folder of the shards cached under ``key``."""
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "features" / name


def shard_file(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.safetensors"


@dataclasses.dataclass
class _Shard:
    """The rows of one shard: dataset indices ``kept`` ``[m]``, ``embeddings`` ``[m, D]`` (CPU
    float32) and the ``(index, path, reason)`` of its unreadable images, all in dataset order."""

    kept: list[int] = dataclasses.field(default_factory=list)
    parts: list[torch.Tensor] = dataclasses.field(default_factory=list)
    failures: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)

    def embeddings(self, dim: int) -> torch.Tensor:
        return torch.cat(self.parts) if self.parts else torch.empty(0, dim)


def _shard_problem(tensors: dict, meta: dict, strings: dict, key: dict, index: int, dim: int
                   ) -> str | None:
    """Why a shard read from disk cannot be used as shard ``index`` of ``key`` (``None``: it can)."""
    emb, kept, failed = tensors.get("embeddings"), tensors.get("kept"), tensors.get("failed")
    lo = index * key["shard_images"]
    hi = min(lo + key["shard_images"], key["images"])
    if meta.get("format") != FEATURE_CACHE_FORMAT:
        return f"unknown format {meta.get('format')!r}"
    if meta.get("key") != json.dumps(key, sort_keys=True) or meta.get("shard") != str(index):
        return "it was written under another key"
    if emb is None or emb.dtype != torch.float32 or emb.ndim != 2 or emb.shape[1] != dim:
        return f"its embeddings are not [*, {dim}] float32"
    if kept is None or kept.dtype != torch.int64 or kept.shape != (emb.shape[0],):
        return "its row indices do not match its embeddings"
    if bool((kept[1:] <= kept[:-1]).any()):
        return "its row indices are not in order"
    reasons = strings.get("failure_paths", ()), strings.get("failure_reasons", ())
    if failed is None or failed.dtype != torch.int64 or failed.ndim != 1 \
            or not len(failed) == len(reasons[0]) == len(reasons[1]) \
            or sorted(kept.tolist() + failed.tolist()) != list(range(lo, hi)):
        return f"it does not account for each of its images {lo} to {hi - 1} once"
    return None


def _read_shard(path: Path, key: dict, index: int, dim: int) -> _Shard | None:
    """Shard ``index`` of ``key``, or ``None`` (and the file removed) if it fails a check."""
    if not path.is_file():
        return None
    try:
        tensors, meta, strings = store.read(path)
    except store.StoreError as e:
        problem = str(e)
    else:
        problem = _shard_problem(tensors, meta, strings, key, index, dim)
    if problem:
        log.warning("ignoring and removing cached features %s: %s", path, problem)
        try:
            path.unlink()
        except OSError:
            pass
        return None
    failures = list(zip(tensors["failed"].tolist(), strings["failure_paths"], strings["failure_reasons"]))
    emb = tensors["embeddings"]
    return _Shard(tensors["kept"].tolist(), [emb] if len(emb) else [], failures)


def _write_shard(path: Path, key: dict, index: int, shard: _Shard, dim: int) -> None:
    meta = {"format": FEATURE_CACHE_FORMAT, "key": json.dumps(key, sort_keys=True), "shard": str(index)}
    tensors = {"embeddings": shard.embeddings(dim), "kept": torch.tensor(shard.kept, dtype=torch.int64),
               "failed": torch.tensor([r for r, _, _ in shard.failures], dtype=torch.int64)}
    strings = {"failure_paths": [p for _, p, _ in shard.failures],
               "failure_reasons": [why for _, _, why in shard.failures]}
    store.write(path, tensors, meta, strings=strings)


def _in_order(rows: list[int], emb: torch.Tensor, cpu: bool = True) -> tuple[list[int], torch.Tensor]:
    """A batch's rows sorted by dataset index (device decoding gives JPEGs first); embeddings as
    CPU float32 (for a shard), or where the encoder left them (``cpu=False``)."""
    emb = emb.detach().to("cpu", torch.float32) if cpu else emb.detach()
    if any(a > b for a, b in zip(rows, rows[1:])):
        order = sorted(range(len(rows)), key=rows.__getitem__)
        rows, emb = [rows[k] for k in order], emb[torch.tensor(order, dtype=torch.int64, device=emb.device)]
    return rows, emb


def _failed_rows(paths, lo: int, start: int, stop: int, kept: list[int],
                 bad: list[tuple[str, str]]) -> list[tuple[int, str, str]]:
    """``(dataset index, path, reason)`` of a batch's unreadable images, in dataset order. The
    batch covers the dataset indices ``[start, stop)`` (``paths[j]`` is index ``lo + j``); the
    rows it did not keep failed, and ``bad`` gives their reasons by path."""
    if len(set(kept)) != len(kept) or any(not start <= r < stop for r in kept):
        raise CacheError("an image batch does not follow the order of its files; encode without "
                         "the feature cache (--no-cache)")
    kept_set = set(kept)
    free: dict[str, list[int]] = {}
    for r in range(start, stop):
        if r not in kept_set:
            free.setdefault(str(paths[r - lo]), []).append(r)
    out = []
    for path, reason in bad:
        rows = free.get(path)
        if not rows:
            raise CacheError(f"an image batch reports {path!r} as unreadable, which it does not "
                             "hold; encode without the feature cache (--no-cache)")
        out.append((rows.pop(0), path, reason))
    return sorted(out)


class FeatureStream:
    """The embeddings of a dataset split as ``(kept, embeddings)`` batches in dataset order:
    ``kept`` the dataset indices ``[n]`` of the rows, ``embeddings`` ``[n, D]`` unit rows (CPU
    float32 when the cache is used; otherwise as the encoder returned them), ``n`` at most one
    shard (:data:`SHARD_IMAGES`). Iterate it once.

    Finished shards are read from the cache; missing ones are encoded and each is written as soon
    as its last image is encoded, so an interrupted run leaves its finished shards for the next.
    Consecutive missing shards are encoded by one image loader. While iterating, :attr:`kept`
    (dataset indices of the rows given so far: a Python list, about 36 bytes per image, the one
    thing besides the shard in hand that grows with the split) and :attr:`failures`
    (``(path, reason)`` of the unreadable images, in dataset order) grow; afterwards :attr:`shards_read`,
    :attr:`shards_encoded` and :attr:`hit` say what came from the cache.

    ``cache=False``: nothing is read or written. ``encoded_batches`` replaces
    :func:`~coderclip.images.iter_encoded_batches` (same arguments, same batches); the cache is
    then bypassed, since such batches (e.g. from a Ray cluster) may come from another device or
    precision than ``encoder``'s identity says. ``decode``: see
    :func:`~coderclip.images.iter_encoded_batches`. ``shard_images``: images per shard (default
    :data:`SHARD_IMAGES`; part of the key).
    """

    def __init__(self, encoder, dataset, *, batch_size: int = 64, num_workers: int | None = None,
                 cache: bool = True, show_progress_bar: bool = False, decode: str = "cpu",
                 encoded_batches: Callable | None = None, shard_images: int | None = None):
        self.encoder, self.dataset = encoder, dataset
        use_cache = cache and encoded_batches is None
        # the key stats every file: only computed when the cache is used
        self.key = feature_cache_key(encoder, dataset, decode=decode, shard_images=shard_images) \
            if use_cache else None
        self.folder: Path | None = cache_folder(self.key) if use_cache else None
        self._writing = use_cache   # false after a shard could not be written; reading goes on
        self.shard_images = self.key["shard_images"] if use_cache else (shard_images or SHARD_IMAGES)
        self.dim = encoder.embed_dim
        self.shards = -(-len(dataset.paths) // self.shard_images)
        self._encode = encoded_batches or functools.partial(iter_encoded_batches, decode=decode)
        self._options = {"batch_size": batch_size, "num_workers": num_workers,
                         "show_progress_bar": show_progress_bar}
        self.kept: list[int] = []
        self.failures: list[tuple[str, str]] = []
        self.shards_read = self.shards_encoded = 0
        self._started = False

    @property
    def hit(self) -> bool:
        """Whether every shard came from the cache (meaningful once iterated)."""
        return self.folder is not None and self.shards_read == self.shards

    def kept_paths(self) -> Iterator[str]:
        """Paths of the rows given so far, read lazily (each after its batch was given)."""
        for j in range(len(self.dataset.paths)):
            yield str(self.dataset.paths[self.kept[j]])

    def __iter__(self) -> Iterator[tuple[list[int], torch.Tensor]]:
        if self._started:
            raise CacheError("a feature stream can be iterated only once; open another")
        self._started = True
        return self._batches()

    def _batches(self) -> Iterator[tuple[list[int], torch.Tensor]]:
        s = 0
        while s < self.shards:
            folder = self.folder
            shard = _read_shard(shard_file(folder, s), self.key, s, self.dim) if folder else None
            if shard is not None:
                self.shards_read += 1
                self.failures.extend((p, why) for _, p, why in shard.failures)
                if shard.kept:
                    self.kept.extend(shard.kept)
                    yield shard.kept, shard.embeddings(self.dim)
                s += 1
                continue
            stop = s + 1   # a run of missing shards, up to the next shard on disk
            while stop < self.shards and not (folder and shard_file(folder, stop).exists()):
                stop += 1
            yield from self._encode_run(s, stop)
            s = stop
        if self.folder is not None:
            log.info("image features of %s/%s: %d of %d shards from the cache %s", self.dataset.name,
                     self.dataset.split, self.shards_read, self.shards, self.folder)

    def _encode_run(self, first: int, stop: int) -> Iterator[tuple[list[int], torch.Tensor]]:
        """Encode shards ``[first, stop)`` with one image loader, writing each as it completes."""
        lo, hi = first * self.shard_images, min(stop * self.shard_images, len(self.dataset.paths))
        paths = self.dataset.paths[lo:hi]
        if self.folder is not None:
            log.info("encoding images %d to %d of %s/%s (shards %d to %d of %d)", lo, hi - 1,
                     self.dataset.name, self.dataset.split, first, stop - 1, self.shards)
        batches = self._encode(self.encoder, paths, **self._options)
        try:
            if self.folder is None:
                yield from self._uncached(batches, lo)
                self.shards_encoded += stop - first
            else:
                yield from self._sharded(batches, paths, lo, hi)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()   # stops the loader's workers when the consumer stops early

    def _uncached(self, batches, lo: int) -> Iterator[tuple[list[int], torch.Tensor]]:
        """The encoder's batches as they come (``paths[j]`` is dataset index ``lo + j``)."""
        for idx, emb, bad in batches:
            self.failures.extend(bad)
            if len(idx):
                rows, emb = _in_order([lo + int(i) for i in idx], emb, cpu=False)
                self.kept.extend(rows)
                yield rows, emb

    def _sharded(self, batches, paths, lo: int, hi: int) -> Iterator[tuple[list[int], torch.Tensor]]:
        """The encoder's batches cut at shard ends; each shard is written once its last image is
        encoded (before its last rows are given)."""
        size, n = self.shard_images, len(self.dataset.paths)
        shard, done = _Shard(), lo   # the shard being encoded; indices below `done` are covered
        end = lo
        for idx, emb, bad in batches:
            end = done + len(idx) + len(bad)
            if end > hi:
                break   # more images than it was given: reported below
            rows, emb = _in_order([lo + int(i) for i in idx], emb)
            failed = _failed_rows(paths, lo, done, end, rows, bad)
            for t in range(done // size, (end - 1) // size + 1) if end > done else ():
                shard_end = min((t + 1) * size, n)
                k = bisect.bisect_left(rows, shard_end)
                part_rows, part, rows, emb = rows[:k], emb[:k], rows[k:], emb[k:]
                part_failed = [f for f in failed if f[0] < shard_end]
                failed = failed[len(part_failed):]
                if self._writing:
                    shard.kept.extend(part_rows)
                    shard.parts.append(part)
                    shard.failures.extend(part_failed)
                if end >= shard_end:   # the shard's last image is encoded: keep it
                    self.shards_encoded += 1
                    if self._writing:
                        self._save(t, shard)
                    shard = _Shard()
                self.failures.extend((p, why) for _, p, why in part_failed)
                if part_rows:
                    self.kept.extend(part_rows)
                    yield part_rows, part
            done = end
        if end != hi:
            raise CacheError(f"the image encoder accounted for {end - lo} images where it was given "
                             f"{hi - lo} from {self.dataset.name}; encode without the feature cache "
                             "(--no-cache)")

    def _save(self, index: int, shard: _Shard) -> None:
        """Write a finished shard (and the manifest); on failure, go on without the cache."""
        folder = self.folder
        try:
            manifest = {"format": FEATURE_CACHE_FORMAT, "key": self.key,
                        "shard_images": self.shard_images, "shards": self.shards}
            if _read_json(folder / MANIFEST) != manifest:
                atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
            _write_shard(shard_file(folder, index), self.key, index, shard, self.dim)
        except OSError as e:   # StoreError and OutputError are OSErrors
            log.warning("could not write the feature cache %s (%s); continuing without writing it",
                        folder, e)
            self._writing = False   # shards already on disk are still read


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def stream_features(encoder, dataset, **options) -> FeatureStream:
    """The embeddings of every readable image of ``dataset`` (an
    :class:`~coderclip.datasets.ImageDataset`) as a :class:`FeatureStream` of ``(kept [n],
    embeddings [n, D])`` batches; ``options``: those of :class:`FeatureStream`."""
    return FeatureStream(encoder, dataset, **options)


@dataclasses.dataclass
class CachedFeatures:
    """Embeddings of a dataset split and where they came from (``path``: the cache folder, or
    ``None`` when the cache was not used; ``key`` likewise)."""

    encoded: EncodedImages
    hit: bool
    path: Path | None
    key: dict | None


def encode_dataset(encoder, dataset, *, batch_size: int = 64, num_workers: int | None = None,
                   cache: bool = True, show_progress_bar: bool = False,
                   decode: str = "cpu") -> CachedFeatures:
    """Every readable image of ``dataset`` embedded into one ``[M, D]`` tensor (CPU, float32):
    cached shards read, missing ones encoded and stored. Holds the whole split: for large splits,
    iterate :func:`stream_features` instead."""
    stream = stream_features(encoder, dataset, batch_size=batch_size, num_workers=num_workers,
                             cache=cache, show_progress_bar=show_progress_bar, decode=decode)
    parts = [emb.to("cpu", torch.float32) for _, emb in stream]
    emb = torch.cat(parts) if parts else torch.empty(0, encoder.embed_dim)
    return CachedFeatures(EncodedImages(embeddings=emb, kept=stream.kept, failures=stream.failures),
                          stream.hit, stream.folder, stream.key)
