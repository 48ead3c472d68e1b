"""Finding and reading image files, and embedding many of them with unreadable files skipped."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


def load_image(path: str | os.PathLike) -> Image.Image:
    """Read an image file fully and return it as RGB; raises :class:`ImageReadError` naming the file."""
    try:
        with Image.open(path) as im:
            im.load()  # decode now: truncated files fail here, not later in a worker
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                background = Image.new("RGB", im.size, (255, 255, 255))
                background.paste(im.convert("RGBA"), mask=im.convert("RGBA").getchannel("A"))
                return background
            return im.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image file PIL can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{path}: cannot decode image ({e})") from None


def find_images(inputs: Iterable[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Image files named in ``inputs``: files as given, folders searched (sorted, recursively)."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            out.extend(sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES))
        elif p.exists():
            out.append(p)
        else:
            raise ImageReadError(f"{p}: no such file or folder")
    return out


@dataclasses.dataclass
class EncodedImages:
    """Result of :func:`encode_image_files`: ``embeddings[i]`` belongs to ``paths[kept[i]]``."""

    embeddings: torch.Tensor
    kept: list[int]
    failures: list[tuple[str, str]]


class _ImageFiles(torch.utils.data.Dataset):
    def __init__(self, paths: Sequence[str | os.PathLike], preprocess: Callable):
        self.paths, self.preprocess = list(paths), preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        try:
            return i, self.preprocess(load_image(self.paths[i])), None
        except ImageReadError as e:
            return i, None, str(e)
        except Exception as e:  # a preprocessing failure on one odd image must not end the run
            return i, None, f"{self.paths[i]}: cannot preprocess image ({type(e).__name__}: {e})"


def _collate(items):
    ok = [(i, x) for i, x, err in items if err is None]
    bad = [(i, err) for i, x, err in items if err is not None]
    pixels = torch.stack([x for _, x in ok]) if ok else None
    return [i for i, _ in ok], pixels, bad


def iter_encoded_batches(encoder, paths: Sequence[str | os.PathLike], batch_size: int = 64,
                         num_workers: int | None = None, show_progress_bar: bool = False
                         ) -> Iterator[tuple[list[int], torch.Tensor, list[tuple[str, str]]]]:
    """Embed image files batch by batch: yields ``(indices into paths [n], unit embeddings
    [n, D] on the encoder's device, (path, reason) of this batch's unreadable files)``.

    Decoding and preprocessing run in ``num_workers`` background processes (default: up to 4,
    fewer on small machines) while the model encodes the previous batch. Unreadable files are
    logged by path and skipped. Memory holds a few batches, whatever the number of files.
    """
    if num_workers is None:
        num_workers = min(4, max(0, (os.cpu_count() or 1) - 1))
        if len(paths) < 2 * batch_size:
            num_workers = 0
    loader = torch.utils.data.DataLoader(
        _ImageFiles(paths, encoder.preprocess), batch_size=batch_size, num_workers=num_workers,
        collate_fn=_collate, pin_memory=encoder.device.type == "cuda")
    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="encoding images", unit="img")
    skipped = 0
    try:
        for idx, pixels, bad in loader:
            failures = []
            for i, err in bad:
                log.warning("skipping unreadable image %s", err)
                failures.append((str(paths[i]), err))
            skipped += len(bad)
            emb = (encoder.encode_images(pixels, batch_size=batch_size) if pixels is not None
                   else torch.empty(0, encoder.embed_dim, device=encoder.device))
            if bar is not None:
                bar.update(len(idx) + len(bad))
                bar.set_postfix(skipped=skipped)
            yield idx, emb, failures
    finally:
        if bar is not None:
            bar.close()


def encode_image_files(encoder, paths: Sequence[str | os.PathLike], batch_size: int = 64,
                       num_workers: int | None = None, show_progress_bar: bool = False,
                       device: str | torch.device = "cpu") -> EncodedImages:
    """Embed image files into one ``[N', D]`` tensor on ``device`` (the CPU unless asked);
    unreadable ones are logged by path and skipped. For runs too large to hold, iterate
    :func:`iter_encoded_batches` instead."""
    chunks, kept, failures = [], [], []
    for idx, emb, bad in iter_encoded_batches(encoder, paths, batch_size, num_workers, show_progress_bar):
        failures.extend(bad)
        if idx:
            chunks.append(emb.to(device))
            kept.extend(idx)
    emb = torch.cat(chunks) if chunks else torch.empty(0, encoder.embed_dim, device=device)
    return EncodedImages(embeddings=emb, kept=kept, failures=failures)
