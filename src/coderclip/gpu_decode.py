"""JPEG decoding and preprocessing on the model's device (nvJPEG through
``torchvision.io.decode_jpeg``), for encoders whose preprocessing is the usual resize, centre crop,
to-tensor, normalise pipeline (open_clip's). On a fast GPU the CPU's JPEG decoding is the
bottleneck of an evaluation; with this, worker processes only read file bytes.

The resampling is torch's antialiased bicubic instead of PIL's, so pixels differ slightly from the
CPU path (embeddings agree to about 1e-2; ``benchmarks/gpu_e2e.py`` measures the agreement).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import torch

JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclasses.dataclass(frozen=True)
class DevicePreprocess:
    """The tensor equivalent of a torchvision ``Compose`` of Resize / CenterCrop / ToTensor /
    Normalize: ``__call__`` takes decoded ``uint8`` images ``[3, H, W]`` (any sizes, on the device)
    and returns one float batch ``[N, 3, S, S]``."""

    resize: int | tuple[int, int] | None
    crop: tuple[int, int] | None
    mean: tuple[float, ...]
    std: tuple[float, ...]
    interpolation: str

    def __call__(self, images: Sequence[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
        from torchvision.transforms.v2 import functional as F

        out = []
        for im in images:
            if self.resize is not None:
                size = list(self.resize) if isinstance(self.resize, tuple) else [self.resize]
                im = F.resize(im, size, interpolation=_interp(self.interpolation), antialias=True)
            if self.crop is not None:
                im = F.center_crop(im, list(self.crop))
            out.append(im)
        x = torch.stack(out).float().div_(255)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return ((x - mean) / std).to(dtype)


def device_preprocess_for(preprocess: Callable) -> DevicePreprocess | None:
    """A :class:`DevicePreprocess` doing what ``preprocess`` does, or ``None`` when it holds
    anything other than Resize, CenterCrop, RGB conversion, ToTensor and Normalize."""
    from torchvision import transforms as T

    steps = getattr(preprocess, "transforms", None)
    if not steps:
        return None
    resize = crop = mean = std = None
    interpolation = "bilinear"
    for step in steps:
        name = type(step).__name__
        if isinstance(step, T.Resize) and resize is None and crop is None:
            if step.max_size is not None:
                return None
            resize = step.size if isinstance(step.size, int) else tuple(step.size)
            if isinstance(resize, tuple) and len(resize) == 1:
                resize = resize[0]
            interpolation = step.interpolation.value
        elif isinstance(step, T.CenterCrop) and crop is None:
            crop = tuple(step.size)
        elif isinstance(step, T.Normalize) and mean is None:
            mean, std = tuple(map(float, step.mean)), tuple(map(float, step.std))
        elif isinstance(step, T.ToTensor) or name in ("MaybeConvertMode", "MaybeToTensor") \
                or getattr(step, "__name__", "") == "_convert_to_rgb":
            continue
        else:
            return None
    if mean is None or interpolation not in ("bicubic", "bilinear", "nearest"):
        return None
    return DevicePreprocess(resize=resize, crop=crop, mean=mean, std=std, interpolation=interpolation)


def decode_jpegs(data: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor | None]:
    """Decode JPEG byte tensors on ``device`` as RGB ``uint8`` ``[3, H, W]``; one batched call,
    and one call per file only when the batch fails (``None`` for a file that cannot be decoded)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    try:
        return list(decode_jpeg(list(data), mode=ImageReadMode.RGB, device=device))
    except RuntimeError:
        out: list[torch.Tensor | None] = []
        for d in data:
            try:
                out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=device))
            except RuntimeError:
                out.append(None)
        return out


def _interp(name: str):
    from torchvision.transforms import InterpolationMode

    return InterpolationMode(name)
