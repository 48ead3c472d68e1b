"""Places365-Standard. Class names are read from the dataset's own ``categories_places365.txt``
(``/b/bakery/shop`` becomes ``shop bakery``). The official validation set is the test split."""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import ImageDataset
from ._layout import (LARGE_VAL_PER_CLASS, DatasetInfo, check_files_exist, check_split, class_names, fail,
                      holdout, make_dataset, place_name, read_lines, require_file, select)

def _image_dir(info: DatasetInfo, root: Path, candidates: tuple[str, ...]) -> Path:
    for c in candidates:
        if (root / c).is_dir():
            return root / c
    raise fail(info, root, f"missing image folder {' or '.join(repr(str(root / c)) for c in candidates)}")


def _listing(path: Path, index_ok: int) -> tuple[list[str], list[int]]:
    rel, labels = [], []
    for ln in read_lines(path):
        name, _, label = ln.rpartition(" ")
        if not name or not label.isdigit() or int(label) >= index_ok:
            raise DatasetError(f"Places365: {path}: line {ln!r} is not 'IMAGE LABEL' with a label "
                               f"below {index_ok}")
        rel.append(name.lstrip("/"))
        labels.append(int(label))
    return rel, labels


def read(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """Places365-Standard (``split``: train, val or test)."""
    check_split(info, split)
    cats = read_lines(require_file(info, root, root / "categories_places365.txt", "category list"))
    ordered: dict[int, str] = {}
    for ln in cats:
        cat, _, label = ln.rpartition(" ")
        if not label.isdigit():
            raise DatasetError(f"Places365: categories_places365.txt: line {ln!r} is not 'CATEGORY LABEL'")
        ordered[int(label)] = cat
    raw = [place_name(ordered.get(i, "")) for i in range(max(ordered) + 1)]
    names = class_names(info, root, raw, source="categories_places365.txt")
    if split == "test":
        listing = require_file(info, root, root / "places365_val.txt", "validation list")
        rel, labels = _listing(listing, len(names))
        folder = _image_dir(info, root, ("val_256", "val_large"))
    else:
        listing = require_file(info, root, root / "places365_train_standard.txt", "training list")
        rel, labels = _listing(listing, len(names))
        keep = holdout(rel, labels, split, max_per_class=LARGE_VAL_PER_CLASS)
        rel, labels = select(rel, keep), select(labels, keep)
        folder = _image_dir(info, root, ("data_256", "data_large"))
    paths = [folder / r for r in rel]
    check_files_exist(info, root, paths, listing.name)
    return make_dataset(info, names, paths, labels, root, split)
