"""FGVC-Aircraft 2013b, variant level (100 aircraft models), with its official splits (which the
CoOp protocol uses as they are)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from . import ImageDataset, register_loader
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names, describe, find_root,
                      make_dataset, read_lines, require_dir, require_file)

INFO = describe(DatasetInfo(
    key="fgvc_aircraft", title="FGVC-Aircraft", domain="aircraft", n_classes=100,
    layout="images/NNNNNNN.jpg, variants.txt and images_variant_{train,val,test}.txt (the "
           "contents of fgvc-aircraft-2013b/data)",
    splits="official images_variant_{train,val,test}.txt"))


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """FGVC-Aircraft (``split``: train, val or test)."""
    root = find_root(INFO, root, ["variants.txt", f"images_variant_{split}.txt"],
                     ["data", "fgvc-aircraft-2013b/data", "fgvc_aircraft"])
    check_split(INFO, split)
    raw = read_lines(require_file(INFO, root, root / "variants.txt", "class list"))
    names = class_names(INFO, root, raw, source="variants.txt")
    index = {v: i for i, v in enumerate(raw)}
    listing = require_file(INFO, root, root / f"images_variant_{split}.txt", "official split list")
    ids, labels = [], []
    for ln in read_lines(listing):
        image, _, variant = ln.partition(" ")
        if variant.strip() not in index:
            raise DatasetError(f"FGVC-Aircraft: {listing}: variant {variant.strip()!r} of image "
                               f"{image} is not in variants.txt")
        ids.append(image)
        labels.append(index[variant.strip()])
    images = require_dir(INFO, root, root / "images", "image")
    paths = [images / f"{i}.jpg" for i in ids]
    check_files_exist(INFO, root, paths, str(listing))
    return make_dataset(INFO, names, paths, labels, root, split)


register_loader(INFO.key, load)
