"""CUB-200-2011 (200 bird species) in its official layout."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DatasetError
from .base import ImageDataset
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names,
                      holdout, make_dataset, read_lines, require_dir, require_file, select)

def _table(info: DatasetInfo, info_root: Path, path: Path, what: str) -> dict[int, str]:
    out = {}
    for ln in read_lines(require_file(info, info_root, path, what)):
        key, _, value = ln.partition(" ")
        if not key.isdigit() or not value:
            raise DatasetError(f"CUB-200-2011: {path}: line {ln!r} is not 'ID VALUE'")
        out[int(key)] = value.strip()
    return out


def read(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """CUB-200-2011 (``split``: train, val or test)."""
    check_split(info, split)
    classes = _table(info, root, root / "classes.txt", "class list")
    raw = [re.sub(r"^\d+\.", "", classes.get(i + 1, "")) for i in range(max(classes))]
    names = class_names(info, root, raw, source="classes.txt")
    images = _table(info, root, root / "images.txt", "image list")
    labels = _table(info, root, root / "image_class_labels.txt", "label list")
    is_train = _table(info, root, root / "train_test_split.txt", "split list")
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
    folder = require_dir(info, root, root / "images", "image")
    paths = [folder / r for r in rel]
    check_files_exist(info, root, paths, "images.txt")
    return make_dataset(info, names, paths, lab, root, split)
