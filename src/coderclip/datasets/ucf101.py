"""UCF101 action recognition as still images: the middle frame of each clip (CoOp's
``UCF-101-midframes``) with the CoOp split."""

from __future__ import annotations

from pathlib import Path

from . import ImageDataset, register_loader
from ._layout import DatasetInfo, describe, find_root, split_zhou

INFO = describe(DatasetInfo(
    key="ucf101", title="UCF101", domain="action", n_classes=101,
    layout="UCF-101-midframes/<Action_Class>/v_<Action>_gXX_cXX.jpg (one middle frame per clip) "
           "and split_zhou_UCF101.json (the CoOp split file)"))


def load(root: str | Path, split: str = "test") -> ImageDataset:
    """UCF101 middle frames (``split``: train, val or test)."""
    root = find_root(INFO, root, ["split_zhou_UCF101.json", "UCF-101-midframes"], ["ucf101", "UCF101"])
    return split_zhou(INFO, root, "split_zhou_UCF101.json", root / "UCF-101-midframes", split)


register_loader(INFO.key, load)
