"""Oxford-IIIT Pets (37 cat and dog breeds)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DatasetError
from .base import ImageDataset
from ._layout import (DatasetInfo, check_files_exist, check_split, class_names,
                      holdout, make_dataset, read_lines, require_dir, require_file, select)



def _read_annotations(path: Path) -> list[tuple[str, int]]:
    rows = []
    for ln in read_lines(path):
        if ln.startswith("#"):
            continue
        parts = ln.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise DatasetError(f"Oxford-IIIT Pets: {path}: line {ln!r} is not 'IMAGE CLASS_ID ...'")
        rows.append((parts[0], int(parts[1]) - 1))
    return rows


def read(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """Oxford-IIIT Pets (``split``: train, val or test)."""
    check_split(info, split)
    ann = root / "annotations"
    files = {s: require_file(info, root, ann / f"{s}.txt", "official split list") for s in ("trainval", "test")}
    rows = {s: _read_annotations(p) for s, p in files.items()}
    raw_by_label: dict[int, str] = {}
    for image, label in rows["trainval"] + rows["test"]:
        raw_by_label.setdefault(label, re.sub(r"_\d+$", "", image))
    raw = [raw_by_label.get(i, f"class {i + 1}") for i in range(max(raw_by_label) + 1)]
    names = class_names(info, root, raw, source="annotations/trainval.txt and test.txt")
    chosen = rows["test" if split == "test" else "trainval"]
    stems, labels = [r[0] for r in chosen], [r[1] for r in chosen]
    if split != "test":
        keep = holdout(stems, labels, split)
        stems, labels = select(stems, keep), select(labels, keep)
    images = require_dir(info, root, root / "images", "image")
    paths = [images / f"{s}.jpg" for s in stems]
    check_files_exist(info, root, paths, str(files["test" if split == "test" else "trainval"]))
    return make_dataset(info, names, paths, labels, root, split)
