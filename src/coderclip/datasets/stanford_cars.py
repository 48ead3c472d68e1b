"""Stanford Cars (196 car models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .base import ImageDataset
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names,
                      holdout, load_mat, make_dataset, select)



def _annotations(info: DatasetInfo, root: Path, path: Path) -> tuple[list[str], list[int]]:
    ann = load_mat(info, root, path, "annotation file")
    if "annotations" not in ann:
        raise DatasetError(f"Stanford Cars: {path} has no 'annotations' variable")
    a = np.atleast_1d(ann["annotations"])
    try:
        return [str(f) for f in np.atleast_1d(a["fname"])], [int(c) - 1 for c in np.atleast_1d(a["class"])]
    except (ValueError, KeyError, IndexError):
        raise DatasetError(f"Stanford Cars: {path}: annotations lack the 'fname' and 'class' fields "
                           "(the test annotations must be cars_test_annos_withlabels.mat)") from None


def read(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """Stanford Cars (``split``: train, val or test)."""
    check_split(info, split)
    meta = load_mat(info, root, root / "devkit" / "cars_meta.mat", "class list")
    raw = [str(n) for n in np.atleast_1d(meta.get("class_names", []))]
    names = class_names(info, root, raw, source="devkit/cars_meta.mat")
    if split == "test":
        test_annos = root / "cars_test_annos_withlabels.mat"
        if not test_annos.is_file() and (root / "devkit" / test_annos.name).is_file():
            test_annos = root / "devkit" / test_annos.name
        files, labels = _annotations(info, root, test_annos)
        folder, source = root / "cars_test", test_annos.name
    else:
        files, labels = _annotations(info, root, root / "devkit" / "cars_train_annos.mat")
        keep = holdout(files, labels, split)
        files, labels = select(files, keep), select(labels, keep)
        folder, source = root / "cars_train", "devkit/cars_train_annos.mat"
    paths = [folder / f for f in files]
    check_files_exist(info, root, paths, source)
    return make_dataset(info, names, paths, labels, root, split)
