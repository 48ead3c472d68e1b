"""CUB-200-2011 (200 bird species) in its official layout."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DatasetError
from . import ImageDataset, register_loader
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names, describe, find_root,
                      holdout, make_dataset, read_lines, require_dir, require_file, select)

INFO = describe(DatasetInfo(
    key="cub200", title="CUB-200-2011", domain="bird", n_classes=200,
    layout="images/NNN.Class_Name/*.jpg, images.txt, image_class_labels.txt, train_test_split.txt "
           "and classes.txt (the official CUB_200_2011 folder)",
    splits="official train/test (train_test_split.txt), val = 10% of each class's train images"))


def _table(info_root: Path, path: Path, what: str) -> dict[int, str]:
    out = {}
    for ln in read_lines(require_file(INFO, info_root, path, what)):
        key, _, value = ln.partition(" ")
        if not key.isdigit() or not value:
            raise DatasetError(f"CUB-200-2011: {path}: line {ln!r} is not 'ID VALUE'")
        out[int(key)] = value.strip()
    return out


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """CUB-200-2011 (``split``: train, val or test)."""
    root = find_root(INFO, root, ["images.txt", "classes.txt"], ["CUB_200_2011"])
    check_split(INFO, split)
    classes = _table(root, root / "classes.txt", "class list")
    raw = [re.sub(r"^\d+\.", "", classes.get(i + 1, "")) for i in range(max(classes))]
    names = class_names(INFO, root, raw, source="classes.txt")
    images = _table(root, root / "images.txt", "image list")
    labels = _table(root, root / "image_class_labels.txt", "label list")
    is_train = _table(root, root / "train_test_split.txt", "split list")
    want = "0" if split == "test" else "1"
    ids = [i for i in sorted(images) if is_train.get(i) == want]
    missing = [i for i in ids if i not in labels]
    if missing:
        raise DatasetError(f"CUB-200-2011: image id {missing[0]} has no entry in image_class_labels.txt")
    rel = [images[i] for i in ids]
    lab = [int(labels[i]) - 1 for i in ids]
    if split != "test":
        keep = holdout(rel, lab, split)
        rel, lab = select(rel, keep), select(lab, keep)
    folder = require_dir(INFO, root, root / "images", "image")
    paths = [folder / r for r in rel]
    check_files_exist(INFO, root, paths, "images.txt")
    return make_dataset(INFO, names, paths, lab, root, split)


register_loader(INFO.key, load)
