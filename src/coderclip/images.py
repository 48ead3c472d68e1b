"""Finding and reading image files, and embedding many of them with unreadable files skipped."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError
from .gpu_decode import JPEG_SUFFIXES, decode_jpegs, device_preprocess_for

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
    """Item ``i``: ``(i, pixels, error, jpeg_bytes)``; with ``raw_jpeg`` JPEG files come back as
    undecoded bytes (decoded later on the model's device), every other file as pixels."""

    def __init__(self, paths: Sequence[str | os.PathLike], preprocess: Callable, raw_jpeg: bool = False):
        self.paths, self.preprocess, self.raw_jpeg = list(paths), preprocess, raw_jpeg

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        if self.raw_jpeg and str(path).lower().endswith(JPEG_SUFFIXES):
            try:
                with open(path, "rb") as f:
                    return i, None, None, torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
            except OSError as e:
                return i, None, f"{path}: cannot read file ({e.strerror or e})", None
        return (i, *_preprocessed(path, self.preprocess), None)


def _preprocessed(path, preprocess: Callable) -> tuple[torch.Tensor | None, str | None]:
    """``(pixels, None)`` or ``(None, reason)`` for one image file."""
    try:
        return preprocess(load_image(path)), None
    except ImageReadError as e:
        return None, str(e)
    except Exception as e:  # a preprocessing failure on one odd image must not end the run
        return None, f"{path}: cannot preprocess image ({type(e).__name__}: {e})"


def _collate(items):
    ok = [(i, x) for i, x, err, raw in items if x is not None]
    raw = [(i, r) for i, x, err, r in items if r is not None]
    bad = [(i, err) for i, x, err, raw in items if err is not None]
    pixels = torch.stack([x for _, x in ok]) if ok else None
    return [i for i, _ in ok], pixels, [i for i, _ in raw], [r for _, r in raw], bad


def encode_image_files(encoder, paths: Sequence[str | os.PathLike], batch_size: int = 64,
                       num_workers: int | None = None, show_progress_bar: bool = False,
                       decode: str = "cpu") -> EncodedImages:
    """Embed image files; unreadable ones are logged by path and skipped.

    Decoding and preprocessing run in ``num_workers`` background processes (default: up to 4,
    fewer on small machines) while the model encodes the previous batch; batches reach a CUDA
    device through pinned memory. ``decode="device"``: the workers only read JPEG files, which are
    decoded and preprocessed on the encoder's device (nvJPEG, see :mod:`coderclip.gpu_decode`;
    other formats still go through PIL). It falls back to ``"cpu"`` with a warning when the
    encoder's preprocessing has no device equivalent.
    """
    from .errors import ConfigError

    if decode not in ("cpu", "device"):
        raise ConfigError(f"invalid decode {decode!r}; expected 'cpu' or 'device'")
    on_device = None
    if decode == "device":
        on_device = device_preprocess_for(encoder.preprocess)
        if on_device is None:
            log.warning("%s's preprocessing has no device equivalent: decoding on the CPU", encoder.name)
    if num_workers is None:
        num_workers = min(4, max(0, (os.cpu_count() or 1) - 1))
        if len(paths) < 2 * batch_size:
            num_workers = 0
    loader = torch.utils.data.DataLoader(
        _ImageFiles(paths, encoder.preprocess, raw_jpeg=on_device is not None), batch_size=batch_size,
        num_workers=num_workers, collate_fn=_collate, pin_memory=encoder.device.type == "cuda")
    chunks, kept, failures = [], [], []
    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="encoding images", unit="img")
    for idx, pixels, raw_idx, raw, bad in loader:
        if raw:
            decoded = decode_jpegs(raw, encoder.device)
            good = [(i, im) for i, im in zip(raw_idx, decoded) if im is not None]
            if good:
                chunks.append(encoder.encode_images(on_device([im for _, im in good], encoder.dtype),
                                                    batch_size=batch_size))
                kept.extend(i for i, _ in good)
            for i in (i for i, im in zip(raw_idx, decoded) if im is None):  # let PIL try, or say why
                x, err = _preprocessed(paths[i], encoder.preprocess)
                if x is None:
                    bad.append((i, err))
                else:
                    chunks.append(encoder.encode_images(x[None]))
                    kept.append(i)
        for i, err in bad:
            log.warning("skipping unreadable image %s", err)
            failures.append((str(paths[i]), err))
        if pixels is not None:
            chunks.append(encoder.encode_images(pixels, batch_size=batch_size))
            kept.extend(idx)
        if bar is not None:
            bar.update(len(idx) + len(raw_idx) + len(bad))
            bar.set_postfix(skipped=len(failures))
    if bar is not None:
        bar.close()
    dim = encoder.embed_dim
    emb = torch.cat(chunks) if chunks else torch.empty(0, dim, device=encoder.device)
    return EncodedImages(embeddings=emb, kept=kept, failures=failures)
