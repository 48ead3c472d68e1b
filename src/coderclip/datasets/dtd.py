"""DTD, the Describable Textures Dataset (47 texture classes)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import ImageDataset
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names,
                      make_dataset, read_lines, require_dir, require_file)



def read(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """DTD (``split``: train, val or test): the CoOp split when present, else official split 1."""
    check_split(info, split)
    images = require_dir(info, root, root / "images", "image")
    folders = sorted(p.name for p in images.iterdir() if p.is_dir())
    names = class_names(info, root, folders, source="the class folders in images/")
    index = {f: i for i, f in enumerate(folders)}
    listing = require_file(info, root, root / "labels" / f"{split}1.txt", "official split list")
    rel = read_lines(listing)
    unknown = [r for r in rel if r.split("/")[0] not in index]
    if unknown:
        raise DatasetError(f"DTD: {listing} names {unknown[0]!r}, whose class folder is not in images/")
    paths = [images / r for r in rel]
    check_files_exist(info, root, paths, str(listing))
    return make_dataset(info, names, paths, [index[r.split("/")[0]] for r in rel], root, split)
