"""Any labelled image folder (one sub-folder per class) or CSV manifest, as benchmark datasets.

``folder``: ``<root>/<split>/<class>/*`` when ``<root>/<split>`` exists, else ``<root>/<class>/*``
as the test split. ``csv``: ``<root>`` is a ``path,label`` CSV file (the test split), or a folder
holding ``train.csv`` / ``val.csv`` / ``test.csv``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import DatasetError
from .base import ImageDataset, from_csv, from_folder
from ._layout import SPLITS, DatasetInfo, check_split

def read_folder(info: DatasetInfo, root: str | Path, split: str) -> ImageDataset:
    """A class-per-sub-folder image folder (``split`` sub-folders optional)."""
    check_split(info, split)
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


def read_csv(info: DatasetInfo, root: str | Path, split: str) -> ImageDataset:
    """A ``path,label`` CSV manifest (or a folder of ``<split>.csv`` manifests)."""
    check_split(info, split)
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


