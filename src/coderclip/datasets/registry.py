"""The standard datasets as a table: one row per dataset in ``coderclip/data/datasets.json``
(title, domain, class count, layout, split file, marker files, reader), one generic loader.

A dataset that ships a CoOp split file (``split_file`` and ``image_dir`` in its row) is read from
it by :func:`~coderclip.datasets._layout.split_zhou`; otherwise, or when the file is absent, the
reader named in its row reads the dataset's own layout. Adding a CoOp-style dataset is one row of
data; only a genuinely different layout needs a reader module.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, DatasetError
from . import (cifar, cub200, dtd, fgvc_aircraft, flowers102, food101, generic, imagenet, oxford_pets,
               places365, stanford_cars, sun397)
from ._layout import DatasetInfo, check_split, fail, find_root, split_zhou
from .base import ImageDataset

#: reader name (a table row's ``reader``) -> reader(info, root, split) for the dataset's own layout.
READERS: dict[str, Callable[[DatasetInfo, Path, str], ImageDataset]] = {
    "imagenet": imagenet.read, "imagenet_v2": imagenet.read_v2,
    "cifar10": cifar.read, "cifar100": cifar.read,
    "dtd": dtd.read, "food101": food101.read, "fgvc_aircraft": fgvc_aircraft.read,
    "flowers102": flowers102.read, "cub200": cub200.read, "oxford_pets": oxford_pets.read,
    "stanford_cars": stanford_cars.read, "sun397": sun397.read, "places365": places365.read,
    "folder": generic.read_folder, "csv": generic.read_csv,
}


def _read_table() -> dict[str, DatasetInfo]:
    path = resources.files("coderclip").joinpath("data/datasets.json")
    rows = json.loads(path.read_text(encoding="utf-8"))["datasets"]
    out = {}
    for row in rows:
        row = {k: tuple(v) if isinstance(v, list) else v for k, v in row.items()}
        info = DatasetInfo(**row)
        if info.reader is not None and info.reader not in READERS:
            raise DatasetError(f"dataset table: {info.key} names the unknown reader {info.reader!r}")
        out[info.key] = info
    return out


#: key -> :class:`DatasetInfo` of every standard dataset, in table order.
DATASETS: dict[str, DatasetInfo] = _read_table()


def load(key: str, root: str | Path, split: str = "test") -> ImageDataset:
    """Split ``split`` (train, val or test) of the standard dataset ``key`` under ``root``."""
    info = DATASETS.get(key)
    if info is None:
        raise ConfigError(f"unknown dataset {key!r}; known datasets: {', '.join(sorted(DATASETS))}")
    if info.markers:
        root = find_root(info, root, [m.format(split=split) for m in info.markers], info.children)
    if info.split_file and info.image_dir and (Path(root) / info.split_file).is_file():
        return split_zhou(info, Path(root), info.split_file, Path(root) / info.image_dir, split)
    if info.reader is None:
        check_split(info, split)
        raise fail(info, root, f"missing the split file {info.split_file}")
    return READERS[info.reader](info, Path(root).expanduser(), split)


#: key -> loader(root, split="test") -> ImageDataset, one per row of the table.
LOADERS: dict[str, Callable[..., ImageDataset]] = {k: functools.partial(load, k) for k in DATASETS}
