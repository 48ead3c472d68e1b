"""SUN397 scene categories. Class names are read from the dataset's own category list
(``SUN397/ClassName.txt``; ``/a/apse/indoor`` becomes ``indoor apse``) or the CoOp split file."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import ImageDataset
from ._layout import (DatasetInfo, check_files_exist, check_order, check_split, class_names,
                      holdout, make_dataset, place_name, read_lines,
                      read_split_zhou, require_dir, select)



def _partition(info: DatasetInfo, root: Path, name: str) -> Path:
    for cand in (root / "Partitions" / name, root / name, root / "SUN397" / name,
                 root / "SUN397" / "Partitions" / name):
        if cand.is_file():
            return cand
    raise DatasetError(f"SUN397: no CoOp split file {str(root / info.split_file)!r} and no official "
                       f"partition file {str(root / 'Partitions' / name)!r}. Expected layout under "
                       f"{str(root)!r}: {info.layout}")


def read(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """SUN397 (``split``: train, val or test)."""
    check_split(info, split)
    image_dir = require_dir(info, root, root / "SUN397", "image")
    class_file = image_dir / "ClassName.txt"
    categories = read_lines(class_file) if class_file.is_file() else None
    if (root / info.split_file).is_file():
        sp, raw = read_split_zhou(info, root, root / info.split_file, split)
        split_names = [raw.get(i, "") for i in range(max(raw) + 1)] if raw else []
        if categories is not None:
            names = class_names(info, root, [place_name(c) for c in categories], "SUN397/ClassName.txt")
            check_order(info, split_names, names, info.split_file)
        else:
            names = class_names(info, root, split_names, info.split_file)
        paths, labels, source = [image_dir / p for p in sp.relpaths], sp.labels, f"{info.split_file} ({split})"
    else:
        if categories is None:
            raise DatasetError(f"SUN397: missing category list {str(class_file)!r}. Expected layout "
                               f"under {str(root)!r}: {info.layout}")
        names = class_names(info, root, [place_name(c) for c in categories], "SUN397/ClassName.txt")
        index = {c.strip("/"): i for i, c in enumerate(categories)}
        listing = _partition(info, root, "Testing_01.txt" if split == "test" else "Training_01.txt")
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
    check_files_exist(info, root, paths, source)
    return make_dataset(info, names, paths, labels, root, split)
