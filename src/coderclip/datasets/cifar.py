"""CIFAR-10 and CIFAR-100, from the official *binary* version (a plain byte format) or from an
image-folder export. The official Python version is a set of pickles, which coderclip does not
load (unpickling runs code from the file).

Binary records are decoded once into PNG files under ``$CODERCLIP_CACHE/datasets/`` (one folder
per split and content hash of the binary files, written atomically) so that images can be read
like those of every other dataset.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..images import IMAGE_SUFFIXES
from ..names import normalize_name
from .base import ImageDataset
from ._layout import (DatasetInfo, check_split, class_names, fail, holdout, make_dataset,
                      read_lines, require_file, select)

log = logging.getLogger(__name__)

_PIXELS = 32 * 32 * 3
#: Names of the Python (pickle) version's folders and files.
_PICKLE_MARKERS = ("cifar-10-batches-py", "cifar-100-python", "batches.meta", "data_batch_1", "meta")

#: key -> (binary folder name, names file, train files, test files, label byte, record size)
_FORMATS = {
    "cifar10": ("cifar-10-batches-bin", "batches.meta.txt",
                [f"data_batch_{i}.bin" for i in range(1, 6)], ["test_batch.bin"], 0, 1 + _PIXELS),
    "cifar100": ("cifar-100-binary", "fine_label_names.txt", ["train.bin"], ["test.bin"], 1,
                 2 + _PIXELS),
}


def _decode(info: DatasetInfo, files: list[Path], label_byte: int, record: int, n_classes: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 32, 32, 3]`` uint8 and labels ``[N]`` from binary batch files."""
    images, labels = [], []
    for f in files:
        raw = np.fromfile(f, dtype=np.uint8)
        if raw.size == 0 or raw.size % record:
            raise DatasetError(f"{info.title}: {f} is {raw.size} bytes, not a whole number of "
                               f"{record}-byte records; the file is truncated or not the binary version")
        rows = raw.reshape(-1, record)
        lab = rows[:, label_byte].astype(np.int64)
        if lab.max() >= n_classes:
            raise DatasetError(f"{info.title}: {f} holds label {int(lab.max())}, expected < {n_classes}")
        images.append(rows[:, record - _PIXELS:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lab)
    return np.concatenate(images), np.concatenate(labels)


def _extract(info: DatasetInfo, files: list[Path], label_byte: int, record: int, n_classes: int,
             split: str) -> tuple[list[Path], list[int]]:
    """PNG files for the records of ``files`` (decoded once, then reused) and their labels."""
    from PIL import Image

    from ..paths import cache_dir
    from ..encoders.fingerprint import _file_digest

    h = hashlib.sha256()
    for f in files:
        h.update(_file_digest(f).encode())
    folder = cache_dir() / "datasets" / f"{info.key}-{split}-{h.hexdigest()[:16]}"
    labels_file = folder / "labels.txt"
    if labels_file.is_file():
        labels = [int(x) for x in read_lines(labels_file)]
        return [folder / f"{i:05d}.png" for i in range(len(labels))], labels
    images, labels = _decode(info, files, label_byte, record, n_classes)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        log.info("decoding %d %s %s images into %s", len(images), info.title, split, folder)
        for i, im in enumerate(images):
            Image.fromarray(im).save(tmp / f"{i:05d}.png", compress_level=1)
        (tmp / "labels.txt").write_text("\n".join(str(int(x)) for x in labels) + "\n")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished first: its folder is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [folder / f"{i:05d}.png" for i in range(len(labels))], [int(x) for x in labels]


def _from_binary(info: DatasetInfo, root: Path, fmt, split: str) -> ImageDataset:
    _, names_file, train_files, test_files, label_byte, record = fmt
    raw = [ln for ln in read_lines(require_file(info, root, root / names_file, "class list"))]
    names = class_names(info, root, raw, source=names_file)
    files = [require_file(info, root, root / f, "batch file")
             for f in (test_files if split == "test" else train_files)]
    paths, labels = _extract(info, files, label_byte, record, len(names), "test" if split == "test" else "train")
    if split != "test":
        keep = holdout([p.name for p in paths], labels, split)
        paths, labels = select(paths, keep), select(labels, keep)
    return make_dataset(info, names, paths, labels, root, split)


def _from_folders(info: DatasetInfo, root: Path, split: str) -> ImageDataset:
    """An image-folder export: ``<root>/<train|test>/<class>/*.png``."""
    from ..knowledge.packs import shipped_class_names

    folder = root / ("test" if split == "test" else "train")
    if not folder.is_dir():
        raise fail(info, root, f"missing folder {str(folder)!r}")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    try:
        shipped = shipped_class_names(info.key)
    except DatasetError:
        shipped = None
    index = {normalize_name(n): i for i, n in enumerate(shipped or [])}
    if shipped and len(subdirs) == len(shipped) and all(normalize_name(d.name) in index for d in subdirs):
        names, label_of = shipped, {d.name: index[normalize_name(d.name)] for d in subdirs}
    elif subdirs and all(d.name.isdigit() for d in subdirs):
        names = class_names(info, root, [str(i) for i in range(len(subdirs))], source=str(folder))
        label_of = {d.name: int(d.name) for d in subdirs}
        if sorted(label_of.values()) != list(range(len(subdirs))):
            raise fail(info, root, f"the numbered class folders in {str(folder)!r} are not 0..{len(subdirs) - 1}")
    else:
        # the datasets' own label names are in alphabetical order, so sorted folders = label order
        names = class_names(info, root, [d.name for d in subdirs], source=f"the class folders in {folder}")
        label_of = {d.name: i for i, d in enumerate(subdirs)}
    paths, labels = [], []
    for d in subdirs:
        files = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [label_of[d.name]] * len(files)
    if split != "test":
        keep = holdout([f"{p.parent.name}/{p.name}" for p in paths], labels, split)
        paths, labels = select(paths, keep), select(labels, keep)
    return make_dataset(info, names, paths, labels, root, split)


def read(info: DatasetInfo, root: str | Path, split: str) -> ImageDataset:
    """CIFAR-10 or CIFAR-100 (``info.key``) from the binary version or an image-folder export."""
    fmt = _FORMATS[info.key]
    binary_dir, names_file, train_files, test_files = fmt[:4]
    check_split(info, split)
    base = Path(root).expanduser()
    if not base.is_dir():
        raise fail(info, base, f"the dataset folder {str(base)!r} does not exist")
    if (base / binary_dir).is_dir():
        base = base / binary_dir
    if (base / names_file).is_file() or any((base / f).exists() for f in train_files + test_files):
        return _from_binary(info, base, fmt, split)
    if (base / "test").is_dir() or (base / "train").is_dir():
        return _from_folders(info, base, split)
    if any((base / m).exists() for m in _PICKLE_MARKERS):
        raise fail(info, base, "this looks like the Python (pickle) version, which coderclip "
                               "does not load; download the binary version instead")
    raise fail(info, base, f"found neither {binary_dir}/ nor train/ and test/ image folders")
