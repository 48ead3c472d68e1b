"""Support features: each support image's embedding averaged over E augmented views (random
resized crop, scale 0.5–1, horizontal flip), normalised, and cached on disk.

Views are drawn from a generator seeded by the augmentation's seed and the image's cache key, so
an image gets the same views whichever batch, worker or few-shot seed it is encoded in, and a
cached feature is exactly what encoding it again would give.

Cache layout: ``$CODERCLIP_CACHE/support-features/<sha256(model identity | augmentation)[:24]>/``,
in the text-embedding cache's shard format (atomic writes, checksums, safe to share between
processes). An image's key is its absolute path, size and modification time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..bank.cache import TextEmbeddingCache
from ..errors import ConfigError, ImageReadError
from ..images import EncodedImages, load_image
from .cache_model import normalize_rows
from .defaults import DEFAULT_VIEWS

log = logging.getLogger(__name__)

AUGMENTATION_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """How support views are made. ``views=0`` uses the plain preprocessed image once."""

    views: int = DEFAULT_VIEWS
    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.views) < 0:
            raise ConfigError(f"views must be >= 0, got {self.views}")
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"scale must satisfy 0 < low <= high <= 1, got {self.scale}")
        if not 0 < self.ratio[0] <= self.ratio[1]:
            raise ConfigError(f"ratio must satisfy 0 < low <= high, got {self.ratio}")

    def key(self) -> str:
        """Everything that changes the features, as a string (part of the cache key)."""
        return json.dumps({"version": AUGMENTATION_VERSION, **dataclasses.asdict(self)}, sort_keys=True)

    def make_views(self, image: Image.Image, size: tuple[int, int], rng: np.random.Generator
                   ) -> list[Image.Image]:
        """``views`` augmented copies of ``image``, each ``size`` (width, height) pixels."""
        if self.views == 0:
            return [image]
        out = []
        for _ in range(self.views):
            box = random_resized_box(image.width, image.height, self.scale, self.ratio, rng)
            view = image.resize(size, Image.Resampling.BICUBIC, box=box)
            if self.flip and rng.random() < 0.5:
                view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            out.append(view)
        return out


def random_resized_box(width: int, height: int, scale: tuple[float, float],
                       ratio: tuple[float, float], rng: np.random.Generator
                       ) -> tuple[int, int, int, int]:
    """A random crop box (left, top, right, bottom) covering ``scale`` of the area with an aspect
    ratio in ``ratio`` (log-uniform); after 10 misses, the largest central crop within ``ratio``."""
    area = width * height
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_r))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    aspect = width / height
    if aspect < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif aspect > ratio[1]:
        w, h = int(round(height * ratio[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def input_size(preprocess) -> tuple[int, int]:
    """(width, height) of the tensors ``preprocess`` makes, found by preprocessing a blank image."""
    t = preprocess(Image.new("RGB", (97, 83)))
    return int(t.shape[-1]), int(t.shape[-2])


def image_key(path: str | os.PathLike) -> str:
    """Cache key of an image file: absolute path, size and modification time."""
    st = os.stat(path)
    return f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}"


class SupportFeatureCache(TextEmbeddingCache):
    """Support features of one (model, augmentation), keyed by :func:`image_key`."""

    def __init__(self, identity: str, root: str | os.PathLike | None = None):
        super().__init__(identity, root)
        digest = hashlib.sha256(identity.encode()).hexdigest()[:24]
        self.folder = self.root / "support-features" / digest


class _Views(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[Path], keys: Sequence[str], aug: Augmentation, preprocess,
                 size: tuple[int, int]):
        self.paths, self.keys, self.aug, self.preprocess, self.size = paths, keys, aug, preprocess, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        digest = hashlib.sha256(f"{self.aug.seed}|{self.keys[i]}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        try:
            image = load_image(self.paths[i])
            views = self.aug.make_views(image, self.size, rng)
            return i, torch.stack([self.preprocess(v) for v in views]), None
        except ImageReadError as e:
            return i, None, str(e)
        except Exception as e:  # one odd image must not end a long run
            return i, None, f"{self.paths[i]}: cannot augment image ({type(e).__name__}: {e})"


def _collate(items):
    return items


def support_features(encoder, paths: Sequence[str | os.PathLike],
                     augmentation: Augmentation = Augmentation(), *, batch_size: int = 64,
                     num_workers: int | None = None, cache: bool | SupportFeatureCache = True,
                     show_progress_bar: bool = False) -> EncodedImages:
    """Normalised mean embedding over augmented views for each image ``[n_kept, D]`` (float32,
    on the encoder's device); unreadable images are logged, skipped and listed in ``failures``.

    ``batch_size`` counts views, so one batch holds about ``batch_size / views`` images.
    """
    paths = [Path(p) for p in paths]
    keys: list[str | None] = []
    failures: dict[int, str] = {}
    for i, p in enumerate(paths):
        try:
            keys.append(image_key(p))
        except OSError:
            keys.append(None)
            failures[i] = f"{p}: no such file"
    if cache is True:
        cache = SupportFeatureCache(f"{encoder.identity}|{augmentation.key()}")
    elif cache is False:
        cache = None
    feats = torch.zeros(len(paths), encoder.embed_dim)
    have = torch.zeros(len(paths), dtype=torch.bool)
    todo = [i for i, k in enumerate(keys) if k is not None]
    if cache is not None and todo:
        got, missing = cache.load([keys[i] for i in todo], encoder.embed_dim)
        if got is not None:
            hit = sorted(set(range(len(todo))) - set(missing))
            if hit:
                idx = torch.tensor([todo[j] for j in hit])
                feats[idx] = got[torch.tensor(hit)]
                have[idx] = True
        todo = [todo[j] for j in missing]
    if todo:
        new = _encode(encoder, [paths[i] for i in todo], [keys[i] for i in todo], augmentation,
                      batch_size, num_workers, show_progress_bar)
        ok = sorted(j for j, value in new.items() if not isinstance(value, str))
        for j, value in sorted(new.items()):
            if isinstance(value, str):
                failures[todo[j]] = value
                log.warning("skipping unreadable support image %s", value)
        done = [todo[j] for j in ok]
        if done:
            rows = torch.stack([new[j] for j in ok])
            feats[torch.tensor(done)] = rows
            have[torch.tensor(done)] = True
            if cache is not None:
                cache.add([keys[i] for i in done], rows)
    kept = have.nonzero().squeeze(1).tolist()
    return EncodedImages(embeddings=feats[kept].to(encoder.device), kept=kept,
                         failures=[(str(paths[i]), failures[i]) for i in sorted(failures)])


def _encode(encoder, paths, keys, aug, batch_size, num_workers, show_progress_bar
            ) -> dict[int, torch.Tensor | str]:
    """Position in ``paths`` -> feature ``[D]`` (CPU float32), or the reason it failed."""
    per_batch = max(1, batch_size // max(1, aug.views))
    if num_workers is None:
        num_workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if len(paths) >= 2 * per_batch else 0
    data = _Views(paths, keys, aug, encoder.preprocess, input_size(encoder.preprocess))
    loader = torch.utils.data.DataLoader(data, batch_size=per_batch, num_workers=num_workers,
                                         collate_fn=_collate)
    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc=f"support features ({aug.views} views)", unit="img")
    out: dict[int, torch.Tensor | str] = {}
    for items in loader:
        ok = [(i, v) for i, v, err in items if err is None]
        for i, _, err in items:
            if err is not None:
                out[i] = err
        if ok:
            pixels = torch.cat([v for _, v in ok])
            emb = encoder.encode_images(pixels, batch_size=batch_size).to("cpu", torch.float32)
            counts = [v.shape[0] for _, v in ok]
            for (i, _), part in zip(ok, torch.split(emb, counts)):
                out[i] = normalize_rows(part.mean(0, keepdim=True))[0]
        if bar is not None:
            bar.update(len(items))
    if bar is not None:
        bar.close()
    return out
