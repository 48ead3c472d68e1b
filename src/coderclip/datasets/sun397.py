"""SUN397 scene categories. Class names are read from the dataset's own category list
(``SUN397/ClassName.txt``; ``/a/apse/indoor`` becomes ``indoor apse``) or the CoOp split file."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from . import ImageDataset, register_loader
from ._layout import (DatasetInfo, check_files_exist, check_order, check_split, class_names,
                      describe, find_root, holdout, make_dataset, place_name, read_lines,
                      read_split_zhou, require_dir, select)

INFO = describe(DatasetInfo(
    key="sun397", title="SUN397", domain="places", n_classes=397,
    layout="SUN397/<letter>/<category>[/<qualifier>]/sun_*.jpg and SUN397/ClassName.txt, with "
           "split_zhou_SUN397.json (the CoOp split file) or the official partition files "
           "Partitions/Training_01.txt and Partitions/Testing_01.txt",
    splits="CoOp split file; else official partition 01, val = 10% of each class's training images",
    names_from_data=True))

SPLIT_FILE = "split_zhou_SUN397.json"


def _partition(root: Path, name: str) -> Path:
    for cand in (root / "Partitions" / name, root / name, root / "SUN397" / name,
                 root / "SUN397" / "Partitions" / name):
        if cand.is_file():
            return cand
    raise DatasetError(f"SUN397: no CoOp split file {str(root / SPLIT_FILE)!r} and no official "
                       f"partition file {str(root / 'Partitions' / name)!r}. Expected layout under "
                       f"{str(root)!r}: {INFO.layout}")


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """SUN397 (``split``: train, val or test)."""
    root = find_root(INFO, root, [SPLIT_FILE, "SUN397"], ["sun397"])
    check_split(INFO, split)
    image_dir = require_dir(INFO, root, root / "SUN397", "image")
    class_file = image_dir / "ClassName.txt"
    categories = read_lines(class_file) if class_file.is_file() else None
    if (root / SPLIT_FILE).is_file():
        sp, raw = read_split_zhou(INFO, root, root / SPLIT_FILE, split)
        split_names = [raw.get(i, "") for i in range(max(raw) + 1)] if raw else []
        if categories is not None:
            names = class_names(INFO, root, [place_name(c) for c in categories], "SUN397/ClassName.txt")
            check_order(INFO, split_names, names, SPLIT_FILE)
        else:
            names = class_names(INFO, root, split_names, SPLIT_FILE)
        paths, labels, source = [image_dir / p for p in sp.relpaths], sp.labels, f"{SPLIT_FILE} ({split})"
    else:
        if categories is None:
            raise DatasetError(f"SUN397: missing category list {str(class_file)!r}. Expected layout "
                               f"under {str(root)!r}: {INFO.layout}")
        names = class_names(INFO, root, [place_name(c) for c in categories], "SUN397/ClassName.txt")
        index = {c.strip("/"): i for i, c in enumerate(categories)}
        listing = _partition(root, "Testing_01.txt" if split == "test" else "Training_01.txt")
        rel = [ln.lstrip("/") for ln in read_lines(listing)]
        labels = []
        for r in rel:
            category = r.rsplit("/", 1)[0]
            if category not in index:
                raise DatasetError(f"SUN397: {listing} names {r!r}, whose category is not in ClassName.txt")
            labels.append(index[category])
        if split != "test":
            keep = holdout(rel, labels, split)
            rel, labels = select(rel, keep), select(labels, keep)
        paths, source = [image_dir / r for r in rel], str(listing)
    check_files_exist(INFO, root, paths, source)
    return make_dataset(INFO, names, paths, labels, root, split)


register_loader(INFO.key, load)
