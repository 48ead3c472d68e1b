"""Food-101 (101 dishes)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from . import ImageDataset, register_loader
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names, describe, find_root,
                      holdout, make_dataset, read_lines, require_dir, require_file, select,
                      split_zhou)

INFO = describe(DatasetInfo(
    key="food101", title="Food-101", domain="food", n_classes=101,
    layout="images/<class>/<id>.jpg with split_zhou_Food101.json (the CoOp split file) or the "
           "official meta/classes.txt, meta/train.txt and meta/test.txt",
    splits="CoOp split file; else official train/test, val = 10% of each class's train images"))

SPLIT_FILE = "split_zhou_Food101.json"


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """Food-101 (``split``: train, val or test)."""
    root = find_root(INFO, root, [SPLIT_FILE, "images", "meta"], ["food-101", "food101"])
    if (root / SPLIT_FILE).is_file():
        return split_zhou(INFO, root, SPLIT_FILE, root / "images", split)
    check_split(INFO, split)
    meta = root / "meta"
    raw = read_lines(require_file(INFO, root, meta / "classes.txt", "class list"))
    names = class_names(INFO, root, raw, source="meta/classes.txt")
    index = {c: i for i, c in enumerate(raw)}
    listing = meta / ("test.txt" if split == "test" else "train.txt")
    rel = read_lines(require_file(INFO, root, listing, "official split list"))
    bad = [r for r in rel if r.split("/")[0] not in index]
    if bad:
        raise DatasetError(f"Food-101: {listing} names {bad[0]!r}, whose class is not in meta/classes.txt")
    labels = [index[r.split("/")[0]] for r in rel]
    if split != "test":
        keep = holdout(rel, labels, split)
        rel, labels = select(rel, keep), select(labels, keep)
    images = require_dir(INFO, root, root / "images", "image")
    paths = [images / f"{r}.jpg" for r in rel]
    check_files_exist(INFO, root, paths, str(listing))
    return make_dataset(INFO, names, paths, labels, root, split)


register_loader(INFO.key, load)
