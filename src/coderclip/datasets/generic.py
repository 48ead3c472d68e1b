"""Any labelled image folder (one sub-folder per class) or CSV manifest, as benchmark datasets.

``folder``: ``<root>/<split>/<class>/*`` when ``<root>/<split>`` exists, else ``<root>/<class>/*``
as the test split. ``csv``: ``<root>`` is a ``path,label`` CSV file (the test split), or a folder
holding ``train.csv`` / ``val.csv`` / ``test.csv``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from . import ImageDataset, from_csv, from_folder, register_loader
from ._layout import SPLITS, DatasetInfo, check_split, describe

INFO_FOLDER = describe(DatasetInfo(
    key="folder", title="image folder", domain="generic", n_classes=0,
    layout="<class>/<image> (test split), or train/, val/, test/ each with <class>/<image>",
    splits="the split sub-folders when present"))
INFO_CSV = describe(DatasetInfo(
    key="csv", title="CSV manifest", domain="generic", n_classes=0,
    layout="a path,label CSV file, or a folder with train.csv, val.csv and test.csv",
    splits="one CSV file per split"))


def load_folder(root: str | Path, split: str = "test") -> ImageDataset:
    """A class-per-sub-folder image folder (``split`` sub-folders optional)."""
    check_split(INFO_FOLDER, split)
    root = Path(root).expanduser()
    if (root / split).is_dir():
        ds = from_folder(root / split, name=root.name)
    elif any((root / s).is_dir() for s in SPLITS):
        found = [s for s in SPLITS if (root / s).is_dir()]
        raise DatasetError(f"image folder {str(root)!r} has split folders {found} but no {split!r}")
    elif split == "test":
        ds = from_folder(root)
    else:
        raise DatasetError(f"image folder {str(root)!r} has no {split!r} sub-folder; only its "
                           "test split (the folder itself) is available")
    ds.split = split
    return ds


def load_csv(root: str | Path, split: str = "test") -> ImageDataset:
    """A ``path,label`` CSV manifest (or a folder of ``<split>.csv`` manifests)."""
    check_split(INFO_CSV, split)
    root = Path(root).expanduser()
    if root.is_dir():
        ds = from_csv(root / f"{split}.csv", name=root.name)
    elif split == "test":
        ds = from_csv(root)
    else:
        raise DatasetError(f"{str(root)!r} is a single manifest (the test split); for a {split!r} "
                           f"split pass a folder holding {split}.csv")
    ds.split = split
    return ds


register_loader("folder", load_folder)
register_loader("csv", load_csv)
