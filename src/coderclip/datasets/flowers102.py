"""Oxford Flowers 102."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from .base import ImageDataset
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names,
                      load_mat, make_dataset, require_dir)

_SETID = {"train": "trnid", "val": "valid", "test": "tstid"}


def read(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """Flowers102 (``split``: train, val or test)."""
    check_split(info, split)
    labels_all = np.atleast_1d(load_mat(info, root, root / "imagelabels.mat", "label file")["labels"])
    ids = np.atleast_1d(load_mat(info, root, root / "setid.mat", "split file")[_SETID[split]])
    labels_all = labels_all.astype(np.int64) - 1
    n = int(labels_all.max()) + 1
    raw = [f"class {i + 1}" for i in range(n)]
    cat = root / "cat_to_name.json"
    if cat.is_file():
        try:
            mapping = json.loads(cat.read_text(encoding="utf-8"))
            raw = [str(mapping.get(str(i + 1), raw[i])) for i in range(n)]
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DatasetError(f"Flowers102: {cat} is not valid JSON ({e})") from None
    names = class_names(info, root, raw, source="imagelabels.mat")
    ids = ids.astype(np.int64)
    if ids.min() < 1 or ids.max() > len(labels_all):
        raise DatasetError(f"Flowers102: setid.mat names image ids outside 1..{len(labels_all)}")
    images = require_dir(info, root, root / "jpg", "image")
    paths = [images / f"image_{i:05d}.jpg" for i in ids.tolist()]
    check_files_exist(info, root, paths, f"setid.mat ({_SETID[split]})")
    return make_dataset(info, names, paths, labels_all[ids - 1], root, split)
