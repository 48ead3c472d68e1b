"""Food-101 (101 dishes)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import ImageDataset
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names,
                      holdout, make_dataset, read_lines, require_dir, require_file, select)



def read(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """Food-101 (``split``: train, val or test)."""
    check_split(info, split)
    meta = root / "meta"
    raw = read_lines(require_file(info, root, meta / "classes.txt", "class list"))
    names = class_names(info, root, raw, source="meta/classes.txt")
    index = {c: i for i, c in enumerate(raw)}
    listing = meta / ("test.txt" if split == "test" else "train.txt")
    rel = read_lines(require_file(info, root, listing, "official split list"))
    bad = [r for r in rel if r.split("/")[0] not in index]
    if bad:
        raise DatasetError(f"Food-101: {listing} names {bad[0]!r}, whose class is not in meta/classes.txt")
    labels = [index[r.split("/")[0]] for r in rel]
    if split != "test":
        keep = holdout(rel, labels, split)
        rel, labels = select(rel, keep), select(labels, keep)
    images = require_dir(info, root, root / "images", "image")
    paths = [images / f"{r}.jpg" for r in rel]
    check_files_exist(info, root, paths, str(listing))
    return make_dataset(info, names, paths, labels, root, split)
