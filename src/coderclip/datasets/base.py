"""Labelled image collections on disk: :class:`ImageDataset`, image folders and CSV manifests.

An :class:`ImageDataset` keeps its labels behind :meth:`ImageDataset.labels` so that evaluation
code can (and must) finish its predictions before reading them.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..images import IMAGE_SUFFIXES
from ..names import normalize_name

log = logging.getLogger(__name__)


_EVENTS = itertools.count(1)


def next_event() -> int:
    """A process-wide increasing event number: orders label reads against other steps."""
    return next(_EVENTS)


class LabelLog:
    """Notes the event number of every read of the labels (``label_reads``), so that a guard can
    tell afterwards whether labels were read before predictions were final."""

    label_reads: list[int]

    def _note_label_read(self) -> None:
        self.__dict__.setdefault("label_reads", []).append(next_event())


class Labels(LabelLog):
    """Ground-truth labels ``[N]`` that are not in a dataset (e.g. rendered images), readable only
    through :meth:`labels`, with the same read log as :class:`ImageDataset`."""

    def __init__(self, labels) -> None:
        self._labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self._labels)

    def labels(self) -> np.ndarray:
        self._note_label_read()
        return self._labels.copy()


@dataclasses.dataclass
class ImageDataset(LabelLog):
    """Image paths with class names (label order) and labels readable only through ``labels()``."""

    name: str
    class_names: list[str]
    paths: list[Path]
    _labels: np.ndarray = dataclasses.field(repr=False)
    domain: str = "generic"
    root: str | None = None
    split: str | None = None

    def __post_init__(self) -> None:
        self._labels = np.asarray(self._labels, dtype=np.int64)
        if len(self._labels) != len(self.paths):
            raise DatasetError(f"{self.name}: {len(self.paths)} images but {len(self._labels)} labels")
        if len(self.paths) == 0:
            raise DatasetError(f"{self.name}: no images found")

    def __len__(self) -> int:
        return len(self.paths)

    def labels(self) -> np.ndarray:
        """Ground-truth label indices ``[N]``. Evaluation reads them only after predicting; every
        read is noted in ``label_reads``."""
        self._note_label_read()
        return self._labels.copy()

    def describe(self) -> dict:
        return {"name": self.name, "root": self.root, "split": self.split, "images": len(self),
                "classes": len(self.class_names)}


def folder_name(name: str) -> str:
    """A class name from a folder name: ``_`` read as a space, and a name that is not UTF-8
    decoded as Latin-1 (the usual origin of such names) instead of keeping undecodable bytes."""
    raw = os.fsencode(name)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("_", " ")


def class_folders(root: str | Path) -> list[Path]:
    """The class sub-folders of ``root`` in sorted order (hidden ones skipped)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {str(root)!r} does not exist")
    try:
        folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as e:
        raise DatasetError(f"cannot list dataset folder {str(root)!r}: {e.strerror or e}") from None
    if not folders:
        raise DatasetError(f"{root}: expected one sub-folder per class, found none")
    return folders


def from_folder(root: str | Path, name: str | None = None, domain: str = "generic",
                class_names: Sequence[str] | None = None) -> ImageDataset:
    """A folder with one sub-folder of images per class; classes in sorted sub-folder order
    unless ``class_names`` gives the order (matched by normalised name)."""
    root = Path(root)
    folders = class_folders(root)
    names = [folder_name(f.name) for f in folders]
    order = list(range(len(folders)))
    if class_names is not None:
        index = {normalize_name(n): i for i, n in enumerate(class_names)}
        unknown = [n for n in names if normalize_name(n) not in index]
        if unknown:
            raise DatasetError(f"{root}: sub-folders {unknown[:5]} are not among the given classes")
        order = [index[normalize_name(n)] for n in names]
        names = list(class_names)
    paths, labels = [], []
    unreadable: list[str] = []
    for f, label in zip(folders, order):
        files = []
        for folder, dirs, found in os.walk(f, onerror=lambda e: unreadable.append(os.fsdecode(e.filename))):
            dirs.sort()
            files.extend(Path(folder) / n for n in found if Path(n).suffix.lower() in IMAGE_SUFFIXES)
        dangling = [p for p in files if not p.is_file() and p.is_symlink()]
        if dangling:
            log.warning("%s: skipping %d symbolic link(s) to missing files, e.g. %s", f,
                        len(dangling), dangling[0])
        files = sorted(p for p in files if p.is_file())
        paths.extend(files)
        labels.extend([label] * len(files))
    if unreadable:
        raise DatasetError(f"{root}: cannot read the folder(s) {unreadable[:3]}; fix their "
                           "permissions (their images would silently be missing from the evaluation)")
    return ImageDataset(name or root.name, names, paths, np.array(labels), domain=domain, root=str(root))


#: First-row cells that mark a CSV header (path column, label column), compared in lower case.
_PATH_HEADERS = {"path", "file", "filename", "file_name", "image", "img", "image_path", "filepath"}
_LABEL_HEADERS = {"label", "class", "class_name", "classname", "category", "target", "name"}


def from_csv(path: str | Path, name: str | None = None, domain: str = "generic",
             class_names: Sequence[str] | None = None) -> ImageDataset:
    """A CSV manifest with columns ``path,label`` (header optional). Relative paths are relative
    to the CSV's folder. Labels are class names (or integer indices when ``class_names`` is given)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"manifest {str(path)!r} does not exist")
    try:
        rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: cannot parse as UTF-8 CSV ({e})") from None
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if rows and len(rows[0]) >= 2 and rows[0][0].strip().lower() in _PATH_HEADERS \
            and rows[0][1].strip().lower() in _LABEL_HEADERS:
        rows = rows[1:]
    if not rows:
        raise DatasetError(f"{path}: no rows")
    bad = [i for i, r in enumerate(rows) if len(r) < 2 or not r[0].strip() or not r[1].strip()]
    if bad:
        raise DatasetError(f"{path}: row {bad[0] + 1} does not have the form path,label")
    raw = [r[1].strip() for r in rows]
    if class_names is None:
        class_names = sorted(set(raw), key=lambda s: normalize_name(s))
    index = {normalize_name(n): i for i, n in enumerate(class_names)}
    labels = []
    for i, lab in enumerate(raw):
        if normalize_name(lab) in index:
            labels.append(index[normalize_name(lab)])
        elif lab.isdigit() and int(lab) < len(class_names):
            labels.append(int(lab))
        else:
            raise DatasetError(f"{path}: row {i + 1}: unknown label {lab!r}")
    paths = [(path.parent / r[0].strip()) if not Path(r[0].strip()).is_absolute() else Path(r[0].strip())
             for r in rows]
    return ImageDataset(name or path.stem, list(class_names), paths, np.array(labels), domain=domain,
                        root=str(path))


def open_dataset(source: str | Path, class_names: Sequence[str] | None = None,
                 domain: str = "generic") -> ImageDataset:
    """A folder of class sub-folders or a ``.csv`` manifest."""
    p = Path(source)
    if p.suffix.lower() == ".csv":
        return from_csv(p, class_names=class_names, domain=domain)
    return from_folder(p, class_names=class_names, domain=domain)
