"""DTD, the Describable Textures Dataset (47 texture classes)."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from . import ImageDataset, register_loader
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names, describe, find_root,
                      make_dataset, read_lines, require_dir, require_file, split_zhou)

INFO = describe(DatasetInfo(
    key="dtd", title="DTD", domain="texture", n_classes=47,
    layout="images/<class>/<class>_NNNN.jpg with split_zhou_DescribableTextures.json (the CoOp "
           "split file) or the official labels/train1.txt, labels/val1.txt, labels/test1.txt",
    splits="CoOp split file; else the official partition 1 (labels/{train,val,test}1.txt)"))

SPLIT_FILE = "split_zhou_DescribableTextures.json"


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """DTD (``split``: train, val or test): the CoOp split when present, else official split 1."""
    root = find_root(INFO, root, [SPLIT_FILE, "images", "labels"], ["dtd"])
    if (root / SPLIT_FILE).is_file():
        return split_zhou(INFO, root, SPLIT_FILE, root / "images", split)
    check_split(INFO, split)
    images = require_dir(INFO, root, root / "images", "image")
    folders = sorted(p.name for p in images.iterdir() if p.is_dir())
    names = class_names(INFO, root, folders, source="the class folders in images/")
    index = {f: i for i, f in enumerate(folders)}
    listing = require_file(INFO, root, root / "labels" / f"{split}1.txt", "official split list")
    rel = read_lines(listing)
    unknown = [r for r in rel if r.split("/")[0] not in index]
    if unknown:
        raise DatasetError(f"DTD: {listing} names {unknown[0]!r}, whose class folder is not in images/")
    paths = [images / r for r in rel]
    check_files_exist(INFO, root, paths, str(listing))
    return make_dataset(INFO, names, paths, [index[r.split("/")[0]] for r in rel], root, split)

register_loader(INFO.key, load)
