"""Caltech101 (CoOp split: 100 object classes, background and easy-faces folders left out)."""

from __future__ import annotations

from pathlib import Path

from . import ImageDataset, register_loader
from ._layout import DatasetInfo, describe, find_root, split_zhou

INFO = describe(DatasetInfo(
    key="caltech101", title="Caltech101", domain="generic", n_classes=100,
    layout="101_ObjectCategories/<class>/image_XXXX.jpg and split_zhou_Caltech101.json "
           "(the CoOp split file)"))


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """Caltech101 from the CoOp layout (``split``: train, val or test)."""
    root = find_root(INFO, root, ["split_zhou_Caltech101.json", "101_ObjectCategories"],
                     ["caltech-101", "caltech101"])
    return split_zhou(INFO, root, "split_zhou_Caltech101.json", root / "101_ObjectCategories", split)


register_loader(INFO.key, load)
