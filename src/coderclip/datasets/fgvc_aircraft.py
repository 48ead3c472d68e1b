"""FGVC-Aircraft 2013b, variant level (100 aircraft models), with its official splits (which the
CoOp protocol uses as they are)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import ImageDataset
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names,
                      make_dataset, read_lines, require_dir, require_file)

def read(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """FGVC-Aircraft (``split``: train, val or test)."""
    check_split(info, split)
    raw = read_lines(require_file(info, root, root / "variants.txt", "class list"))
    names = class_names(info, root, raw, source="variants.txt")
    index = {v: i for i, v in enumerate(raw)}
    listing = require_file(info, root, root / f"images_variant_{split}.txt", "official split list")
    ids, labels = [], []
    for ln in read_lines(listing):
        image, _, variant = ln.partition(" ")
        if variant.strip() not in index:
            raise DatasetError(f"FGVC-Aircraft: {listing}: variant {variant.strip()!r} of image "
                               f"{image} is not in variants.txt")
        ids.append(image)
        labels.append(index[variant.strip()])
    images = require_dir(info, root, root / "images", "image")
    paths = [images / f"{i}.jpg" for i in ids]
    check_files_exist(info, root, paths, str(listing))
    return make_dataset(info, names, paths, labels, root, split)
