"""Oxford Flowers 102."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from . import ImageDataset, register_loader
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names, describe, find_root,
                      load_mat, make_dataset, require_dir, split_zhou)

INFO = describe(DatasetInfo(
    key="flowers102", title="Flowers102", domain="flower", n_classes=102,
    layout="jpg/image_NNNNN.jpg with split_zhou_OxfordFlowers.json (the CoOp split file) or the "
           "official imagelabels.mat and setid.mat (optional cat_to_name.json)",
    splits="CoOp split file; else the official setid.mat (trnid / valid / tstid)"))

SPLIT_FILE = "split_zhou_OxfordFlowers.json"
_SETID = {"train": "trnid", "val": "valid", "test": "tstid"}


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """Flowers102 (``split``: train, val or test)."""
    root = find_root(INFO, root, [SPLIT_FILE, "jpg", "imagelabels.mat"], ["oxford_flowers", "flowers102"])
    if (root / SPLIT_FILE).is_file():
        return split_zhou(INFO, root, SPLIT_FILE, root / "jpg", split)
    check_split(INFO, split)
    labels_all = np.atleast_1d(load_mat(INFO, root, root / "imagelabels.mat", "label file")["labels"])
    ids = np.atleast_1d(load_mat(INFO, root, root / "setid.mat", "split file")[_SETID[split]])
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
    names = class_names(INFO, root, raw, source="imagelabels.mat")
    ids = ids.astype(np.int64)
    if ids.min() < 1 or ids.max() > len(labels_all):
        raise DatasetError(f"Flowers102: setid.mat names image ids outside 1..{len(labels_all)}")
    images = require_dir(INFO, root, root / "jpg", "image")
    paths = [images / f"image_{i:05d}.jpg" for i in ids.tolist()]
    check_files_exist(INFO, root, paths, f"setid.mat ({_SETID[split]})")
    return make_dataset(INFO, names, paths, labels_all[ids - 1], root, split)


register_loader(INFO.key, load)
