"""Stanford Cars (196 car models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from . import ImageDataset, register_loader
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names, describe, find_root,
                      holdout, load_mat, make_dataset, select, split_zhou)

INFO = describe(DatasetInfo(
    key="stanford_cars", title="Stanford Cars", domain="car", n_classes=196,
    layout="cars_train/NNNNN.jpg and cars_test/NNNNN.jpg with split_zhou_StanfordCars.json (the "
           "CoOp split file) or the official devkit/cars_meta.mat, devkit/cars_train_annos.mat and "
           "cars_test_annos_withlabels.mat",
    splits="CoOp split file; else official train/test, val = 10% of each class's train images"))

SPLIT_FILE = "split_zhou_StanfordCars.json"


def _annotations(root: Path, path: Path) -> tuple[list[str], list[int]]:
    ann = load_mat(INFO, root, path, "annotation file")
    if "annotations" not in ann:
        raise DatasetError(f"Stanford Cars: {path} has no 'annotations' variable")
    a = np.atleast_1d(ann["annotations"])
    try:
        return [str(f) for f in np.atleast_1d(a["fname"])], [int(c) - 1 for c in np.atleast_1d(a["class"])]
    except (ValueError, KeyError, IndexError):
        raise DatasetError(f"Stanford Cars: {path}: annotations lack the 'fname' and 'class' fields "
                           "(the test annotations must be cars_test_annos_withlabels.mat)") from None


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """Stanford Cars (``split``: train, val or test)."""
    root = find_root(INFO, root, [SPLIT_FILE, "cars_test", "devkit"], ["stanford_cars", "stanford-cars"])
    if (root / SPLIT_FILE).is_file():
        return split_zhou(INFO, root, SPLIT_FILE, root, split)
    check_split(INFO, split)
    meta = load_mat(INFO, root, root / "devkit" / "cars_meta.mat", "class list")
    raw = [str(n) for n in np.atleast_1d(meta.get("class_names", []))]
    names = class_names(INFO, root, raw, source="devkit/cars_meta.mat")
    if split == "test":
        test_annos = root / "cars_test_annos_withlabels.mat"
        if not test_annos.is_file() and (root / "devkit" / test_annos.name).is_file():
            test_annos = root / "devkit" / test_annos.name
        files, labels = _annotations(root, test_annos)
        folder, source = root / "cars_test", test_annos.name
    else:
        files, labels = _annotations(root, root / "devkit" / "cars_train_annos.mat")
        keep = holdout(files, labels, split)
        files, labels = select(files, keep), select(labels, keep)
        folder, source = root / "cars_train", "devkit/cars_train_annos.mat"
    paths = [folder / f for f in files]
    check_files_exist(INFO, root, paths, source)
    return make_dataset(INFO, names, paths, labels, root, split)


register_loader(INFO.key, load)
