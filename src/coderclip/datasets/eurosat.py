"""EuroSAT RGB (10 land-use classes from Sentinel-2 tiles; CoOp split)."""

from __future__ import annotations

from pathlib import Path

from . import ImageDataset, register_loader
from ._layout import DatasetInfo, describe, find_root, split_zhou

INFO = describe(DatasetInfo(
    key="eurosat", title="EuroSAT", domain="satellite", n_classes=10,
    layout="2750/<Class>/<Class>_N.jpg and split_zhou_EuroSAT.json (the CoOp split file)"))


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """EuroSAT from the CoOp layout (``split``: train, val or test)."""
    root = find_root(INFO, root, ["split_zhou_EuroSAT.json", "2750"], ["eurosat", "EuroSAT"])
    return split_zhou(INFO, root, "split_zhou_EuroSAT.json", root / "2750", split)


register_loader(INFO.key, load)
