"""Finding and reading image files, and embedding many of them with unreadable files skipped."""

from __future__ import annotations

import dataclasses
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import torch
from PIL import Image, UnidentifiedImageError

from .errors import ImageReadError
from .gpu_decode import JPEG_SUFFIXES, decode_jpegs, device_preprocess_for

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


#: Images larger than this many pixels are refused (PIL's own limit; a 13000 x 13000 PNG would
#: need gigabytes), except JPEGs, which the decoder reads at a half, quarter or eighth of their
#: size instead. ``$CODERCLIP_MAX_IMAGE_PIXELS`` raises or lowers it.
MAX_IMAGE_PIXELS_ENV = "CODERCLIP_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    value = os.environ.get(MAX_IMAGE_PIXELS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else int(Image.MAX_IMAGE_PIXELS or 89_478_485)


def load_image(path: str | os.PathLike | BinaryIO, *, name: str | None = None,
               max_pixels: int | None = None) -> Image.Image:
    """Read an image file (or an open binary stream) fully and return it as 8-bit RGB; raises
    :class:`ImageReadError` naming the file (or ``name``). Pixel values are converted by the
    file's real mode (see :func:`to_rgb`).

    ``max_pixels``: refuse any image with more pixels, JPEGs included, before decoding it (the
    size comes from the header), e.g. for uploads to a service.
    """
    limit = max_image_pixels()
    label = name if name is not None else path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if max_pixels is not None and w * h > max_pixels:
                    raise ImageReadError(f"{label}: image is {w}x{h} pixels, more than the limit "
                                         f"of {max_pixels:,} pixels; send a smaller image")
                if w * h > limit:
                    if im.format != "JPEG":
                        raise ImageReadError(
                            f"{label}: image is {w}x{h} ({w * h / 1e6:.0f} Mpixels), more than the "
                            f"limit of {limit / 1e6:.0f} Mpixels; downscale it, or raise "
                            f"${MAX_IMAGE_PIXELS_ENV} if you have the memory")
                    scale = (limit / (w * h)) ** 0.5   # the JPEG decoder shrinks by 2, 4 or 8
                    im.draft("RGB", (max(1, int(w * scale)), max(1, int(h * scale))))
                im.load()  # decode now: truncated files fail here, not later in a worker
                return to_rgb(im)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{label}: is a folder, not an image file") from None
    except PermissionError:
        raise ImageReadError(f"{label}: permission denied (cannot read the file)") from None
    except UnidentifiedImageError:
        raise ImageReadError(f"{label}: not an image file PIL can read") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageReadError(f"{label}: cannot decode image ({e})") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode, scaling by what the mode's numbers mean.

    * 16-bit ("I;16*", and "I" holding 0..65535): divided by 257, so 65535 is white;
    * 32-bit integer "I" beyond 16 bits and float "F": stretched from their min..max to 0..255
      (floats already in 0..1 are scaled by 255), since such files have no fixed white;
    * transparency ("RGBA", "LA", "PA", palette with transparency): composited on white;
    * everything else (palette, CMYK, YCbCr, 1-bit, ...): PIL's own conversion.
    """
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _scaled_gray(im).convert("RGB")
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", im.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if mode == "RGB":
        return im.copy()
    try:
        return im.convert("RGB")
    except ValueError as e:
        raise ImageReadError(f"{getattr(im, 'filename', '') or 'image'}: cannot convert PIL mode "
                             f"{mode!r} to RGB ({e})") from None


def _scaled_gray(im: Image.Image) -> Image.Image:
    """An "L" image from a 16-bit, 32-bit or float grey image (see :func:`to_rgb`)."""
    import numpy as np

    a = np.asarray(im, dtype=np.float64)
    if a.ndim == 3:  # multi-channel 16-bit variants
        a = a[..., 0]
    finite = np.isfinite(a)
    if not finite.all():
        a = np.where(finite, a, 0.0)
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if im.mode.startswith("I;16") or (im.mode == "I" and lo >= 0 and hi <= 65535):
        a = a / 257.0
    elif im.mode == "F" and lo >= 0 and hi <= 1.0:
        a = a * 255.0
    elif hi > lo:
        a = (a - lo) * (255.0 / (hi - lo))
    else:
        a = np.zeros_like(a)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8), mode="L")


def find_images(inputs: Iterable[str | os.PathLike], recursive: bool = True,
                problems: list[tuple[str, str]] | None = None) -> list[Path]:
    """Image files named in ``inputs``: files as given, folders searched (sorted, recursively).

    Entries that look like images but cannot be used (a dangling symbolic link, an unreadable
    sub-folder) are appended to ``problems`` as ``(path, reason)``, or logged if it is ``None``.
    """
    def note(path: str, reason: str) -> None:
        if problems is None:
            log.warning("%s", reason)
        else:
            problems.append((path, reason))

    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(_walk(p, recursive, note))
        elif p.exists():
            out.append(p)
        elif p.is_symlink():
            raise ImageReadError(f"{p}: a symbolic link to {os.fsdecode(os.readlink(p))!r}, which does not exist")
        else:
            raise ImageReadError(f"{p}: no such file or folder")
    return out


def _walk(root: Path, recursive: bool, note) -> list[Path]:
    found: list[Path] = []

    def onerror(e: OSError) -> None:
        where = os.fsdecode(e.filename) if e.filename else str(root)
        note(where, f"{where}: folder skipped: {e.strerror or e}")

    seen: set[tuple[int, int]] = set()
    for folder, dirs, files in os.walk(root, onerror=onerror, followlinks=True):
        st = os.stat(folder)
        if (st.st_dev, st.st_ino) in seen:  # a symbolic-link loop: already searched
            dirs[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirs.sort()
        if not recursive:
            dirs[:] = []
        for name in files:
            f = Path(folder) / name
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            if f.is_file():
                found.append(f)
            elif f.is_symlink():
                note(str(f), f"{f}: skipped: a symbolic link to a file that does not exist")
    return sorted(found)


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
        if self.raw_jpeg and str(path).lower().endswith(JPEG_SUFFIXES) and _within_pixel_limit(path):
            try:
                with open(path, "rb") as f:
                    return i, None, None, torch.frombuffer(bytearray(f.read()), dtype=torch.uint8)
            except OSError as e:
                return i, None, f"{path}: cannot read file ({e.strerror or e})", None
        return (i, *_preprocessed(path, self.preprocess), None)


def _within_pixel_limit(path) -> bool:
    """Whether a file's header says it is within :func:`max_image_pixels` (larger images, and
    files whose header cannot be read, take the PIL path, which shrinks or refuses them)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # PIL's errors for unreadable headers have no common base class
        return False
    return w * h <= max_image_pixels()


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


def _device_decoder(encoder, decode: str):
    """The device preprocessing for ``decode="device"`` (``None``: decode on the CPU)."""
    from .errors import ConfigError

    if decode not in ("cpu", "device"):
        raise ConfigError(f"invalid decode {decode!r}; expected 'cpu' or 'device'")
    if decode == "cpu":
        return None
    on_device = device_preprocess_for(encoder.preprocess)
    if on_device is None:
        log.warning("%s's preprocessing has no device equivalent: decoding on the CPU", encoder.name)
    return on_device


def _encode_jpegs(encoder, paths, raw_idx, raw, on_device, batch_size: int):
    """Decode and embed one batch's JPEG bytes on the device; files the device decoder refuses
    go through PIL (which reads them or says why not). Returns (indices, embeddings, bad)."""
    decoded = decode_jpegs(raw, encoder.device)
    good = [(i, im) for i, im in zip(raw_idx, decoded) if im is not None]
    idx, embs, bad = [i for i, _ in good], [], []
    if good:
        embs.append(encoder.encode_images(on_device([im for _, im in good], encoder.dtype),
                                          batch_size=batch_size))
    for i in (i for i, im in zip(raw_idx, decoded) if im is None):
        x, err = _preprocessed(paths[i], encoder.preprocess)
        if x is None:
            bad.append((i, err))
        else:
            embs.append(encoder.encode_images(x[None]))
            idx.append(i)
    return idx, embs, bad


def iter_encoded_batches(encoder, paths: Sequence[str | os.PathLike], batch_size: int = 64,
                         num_workers: int | None = None, show_progress_bar: bool = False,
                         decode: str = "cpu"
                         ) -> Iterator[tuple[list[int], torch.Tensor, list[tuple[str, str]]]]:
    """Embed image files batch by batch: yields ``(indices into paths [n], unit embeddings
    [n, D] on the encoder's device, (path, reason) of this batch's unreadable files)``.

    Decoding and preprocessing run in ``num_workers`` background processes (default: up to 4,
    fewer on small machines) while the model encodes the previous batch; batches reach a CUDA
    device through pinned memory. Unreadable files are logged by path and skipped. Memory holds a
    few batches, whatever the number of files. ``decode="device"``: the workers only read JPEG
    files, which are decoded and preprocessed on the encoder's device (nvJPEG, see
    :mod:`coderclip.gpu_decode`; other formats still go through PIL); it falls back to ``"cpu"``
    with a warning when the encoder's preprocessing has no device equivalent.
    """
    on_device = _device_decoder(encoder, decode)
    if num_workers is None:
        num_workers = min(4, max(0, (os.cpu_count() or 1) - 1))
        if len(paths) < 2 * batch_size:
            num_workers = 0
    loader = torch.utils.data.DataLoader(
        _ImageFiles(paths, encoder.preprocess, raw_jpeg=on_device is not None), batch_size=batch_size,
        num_workers=num_workers, collate_fn=_collate, pin_memory=encoder.device.type == "cuda")
    bar = None
    if show_progress_bar:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(paths), desc="encoding images", unit="img")
    skipped = 0
    try:
        for idx, pixels, raw_idx, raw, bad in loader:
            embs = []
            if raw:
                jpeg_idx, embs, jpeg_bad = _encode_jpegs(encoder, paths, raw_idx, raw, on_device,
                                                         batch_size)
                idx, bad = jpeg_idx + idx, bad + jpeg_bad
            failures = []
            for i, err in bad:
                log.info("skipping unreadable image %s", err)
                failures.append((str(paths[i]), err))
            skipped += len(bad)
            if pixels is not None:
                embs.append(encoder.encode_images(pixels, batch_size=batch_size))
            emb = torch.cat(embs) if embs else torch.empty(0, encoder.embed_dim, device=encoder.device)
            if bar is not None:
                bar.update(len(idx) + len(bad))
                bar.set_postfix(skipped=skipped)
            yield idx, emb, failures
    finally:
        if bar is not None:
            bar.close()


def encode_image_files(encoder, paths: Sequence[str | os.PathLike], batch_size: int = 64,
                       num_workers: int | None = None, show_progress_bar: bool = False,
                       device: str | torch.device = "cpu", decode: str = "cpu") -> EncodedImages:
    """Embed image files into one ``[N', D]`` tensor on ``device`` (the CPU unless asked);
    unreadable ones are logged by path and skipped. For runs too large to hold, iterate
    :func:`iter_encoded_batches` instead. ``decode``: see :func:`iter_encoded_batches`."""
    chunks, kept, failures = [], [], []
    for idx, emb, bad in iter_encoded_batches(encoder, paths, batch_size, num_workers,
                                              show_progress_bar, decode=decode):
        failures.extend(bad)
        if idx:
            chunks.append(emb.to(device))
            kept.extend(idx)
    emb = torch.cat(chunks) if chunks else torch.empty(0, encoder.embed_dim, device=device)
    return EncodedImages(embeddings=emb, kept=kept, failures=failures)
