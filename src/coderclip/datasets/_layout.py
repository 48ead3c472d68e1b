"""Shared pieces of the standard dataset loaders: dataset descriptions, layout checks with precise
errors, CoOp ``split_zhou_*.json`` files, class-name resolution and held-out validation splits.

Every loader has the signature ``loader(root, split="test") -> ImageDataset`` with ``split`` one of
``train``, ``val``, ``test``. Class names come in the dataset's label order: the list shipped in
``coderclip/data/classnames/<key>.txt`` when there is one, otherwise the dataset's own category
files. Raw labels are mapped to names by index, after checking the class count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..names import normalize_name
from .base import ImageDataset

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
#: Share of each class's training images held out as the validation split, for datasets that
#: publish no validation split of their own.
VAL_FRACTION = 0.1
#: Cap on held-out images per class for the very large training sets (ImageNet, Places365), so
#: that choosing τ on val stays cheap: 10 per class is 10 000 ImageNet images.
LARGE_VAL_PER_CLASS = 10


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """One row of the dataset table (``coderclip/data/datasets.json``): registry key, display
    title, prompt domain, class count, the layout it is read from (shown in errors and docs),
    where its splits come from, and how to find and read it."""

    key: str
    title: str
    domain: str
    n_classes: int
    layout: str
    splits: str = "train / val / test from the CoOp split file"
    #: Class names are read from the dataset's own files (no shipped list), e.g. SUN397.
    names_from_data: bool = False
    #: The CoOp ``split_zhou_*.json`` file, when the dataset has one.
    split_file: str | None = None
    #: Folder (relative to the dataset folder) the split file's paths are relative to; when set,
    #: a present split file is read without the dataset's own reader.
    image_dir: str | None = None
    #: Files or folders that mark the dataset folder (``{split}`` is replaced by the split).
    markers: tuple[str, ...] = ()
    #: Sub-folders of the given root where the dataset folder may sit instead.
    children: tuple[str, ...] = ()
    #: Name of the reader for the dataset's own layout (:data:`coderclip.datasets.registry.READERS`).
    reader: str | None = None


# ---------------------------------------------------------------------------------- errors/checks
def fail(info: DatasetInfo, root: Path | str, problem: str) -> DatasetError:
    """A :class:`DatasetError` that states the problem and the expected layout under ``root``."""
    return DatasetError(f"{info.title}: {problem}. Expected layout under {str(root)!r}: {info.layout}")


def check_split(info: DatasetInfo, split: str, available: Sequence[str] = SPLITS) -> str:
    if split not in available:
        raise DatasetError(f"{info.title} has no split {split!r}; choose one of {', '.join(available)}")
    return split


def find_root(info: DatasetInfo, root: str | Path, markers: Sequence[str],
              children: Sequence[str] = ()) -> Path:
    """The dataset folder: ``root`` itself or one of its ``children``, whichever holds one of the
    ``markers`` (files or folders). Raises naming what was looked for."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise fail(info, root, f"the dataset folder {str(root)!r} does not exist")
    for cand in (root, *(root / c for c in children)):
        if any((cand / m).exists() for m in markers):
            return cand
    looked = ", ".join(markers)
    where = " or ".join(repr(str(c)) for c in (root, *(root / c for c in children)))
    raise fail(info, root, f"none of {looked} found in {where}")


def require_file(info: DatasetInfo, root: Path, path: Path, what: str) -> Path:
    if not path.is_file():
        raise fail(info, root, f"missing {what} {str(path)!r}")
    return path


def require_dir(info: DatasetInfo, root: Path, path: Path, what: str) -> Path:
    if not path.is_dir():
        raise fail(info, root, f"missing {what} folder {str(path)!r}")
    return path


def check_files_exist(info: DatasetInfo, root: Path, paths: Sequence[Path], source: str) -> None:
    """Every listed image must exist; otherwise say how many are missing and name a few."""
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = ", ".join(repr(str(p)) for p in missing[:3])
        raise fail(info, root, f"{len(missing)} of the {len(paths)} images listed in {source} are "
                               f"missing (e.g. {shown}); the image files are incomplete or in "
                               "another folder")


def read_lines(path: Path) -> list[str]:
    """Non-empty, stripped lines of a UTF-8 text file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetError(f"{str(path)!r} is not a UTF-8 text file") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


# ---------------------------------------------------------------------------------- CoOp split files
@dataclasses.dataclass
class Split:
    """Relative image paths and integer labels of one split."""

    relpaths: list[str]
    labels: list[int]


def read_split_zhou(info: DatasetInfo, root: Path, path: Path, split: str) -> tuple[Split, dict[int, str]]:
    """One split of a CoOp ``split_zhou_*.json`` file (``{"train"|"val"|"test": [[path, label,
    classname], ...]}``) and the label -> class name map over all splits."""
    require_file(info, root, path, "CoOp split file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DatasetError(f"{info.title}: split file {str(path)!r} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or split not in data:
        found = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DatasetError(f"{info.title}: split file {str(path)!r} has no {split!r} list "
                           f"(found {found})")
    names: dict[int, str] = {}
    out = Split([], [])
    for key, items in data.items():
        if not isinstance(items, list):
            raise DatasetError(f"{info.title}: {str(path)!r}: {key!r} is not a list")
        for i, item in enumerate(items):
            if (not isinstance(item, list) or len(item) < 3 or not isinstance(item[0], str)
                    or not isinstance(item[1], int) or isinstance(item[1], bool)
                    or not isinstance(item[2], str) or item[1] < 0):
                raise DatasetError(f"{info.title}: {str(path)!r}: {key}[{i}] is not "
                                   f"[relative_path, label, classname]: {item!r}")
            names.setdefault(item[1], item[2])
            if key == split:
                out.relpaths.append(item[0])
                out.labels.append(item[1])
    return out, names


def split_zhou(info: DatasetInfo, root: Path, json_name: str, image_dir: Path, split: str,
               fallback_names: bool = True) -> ImageDataset:
    """The whole loader for datasets read from a CoOp split file whose paths are relative to
    ``image_dir``."""
    check_split(info, split)
    sp, raw = read_split_zhou(info, root, root / json_name, split)
    names = class_names(info, root, [raw.get(i, "") for i in range(max(raw) + 1)] if raw else [],
                        source=json_name, fallback=fallback_names)
    require_dir(info, root, image_dir, "image")
    paths = [image_dir / p for p in sp.relpaths]
    check_files_exist(info, root, paths, f"{json_name} ({split})")
    return make_dataset(info, names, paths, sp.labels, root, split)


# ---------------------------------------------------------------------------------- class names
def class_names(info: DatasetInfo, root: Path, raw: Sequence[str], source: str,
                fallback: bool = True) -> list[str]:
    """The class names in label order, checked against the dataset's own list ``raw`` (label
    order, from ``source``).

    The shipped list is used when there is one; ``raw`` then only serves to check the count and
    that no name sits at another label (a misordered list). Without a shipped list (or when
    ``info.names_from_data``) the names are ``raw`` with underscores as spaces.
    """
    from ..knowledge.packs import shipped_class_names

    if len(raw) != info.n_classes:
        raise fail(info, root, f"{source} defines {len(raw)} classes, expected {info.n_classes}")
    shipped = None
    if not info.names_from_data:
        try:
            shipped = shipped_class_names(info.key)
        except DatasetError:
            if not fallback:
                raise
            log.warning("no shipped class list for %s; using the names in %s", info.key, source)
    if shipped is None:
        return [" ".join(n.replace("_", " ").split()) for n in raw]
    if len(shipped) != info.n_classes:  # a broken install, not a user error
        raise DatasetError(f"the shipped class list for {info.key} has {len(shipped)} names, "
                           f"expected {info.n_classes}")
    check_order(info, raw, shipped, source)
    return list(shipped)


def check_order(info: DatasetInfo, raw: Sequence[str], names: Sequence[str], source: str) -> None:
    """Raise when a name of ``raw`` is found at a different position of ``names``."""
    index = {normalize_name(n): i for i, n in enumerate(names)}
    for label, r in enumerate(raw):
        j = index.get(normalize_name(r))
        if j is not None and j != label:
            raise DatasetError(
                f"{info.title}: label {label} is {r!r} in {source} but the shipped class list has "
                f"{names[j]!r} at position {j}; the dataset's label order differs from coderclip's")


def place_name(category: str) -> str:
    """A SUN/Places category path as a readable name: ``/a/apse/indoor`` -> ``indoor apse``,
    ``/b/bakery/shop`` -> ``shop bakery``, ``abbey`` -> ``abbey``."""
    parts = [p for p in category.strip().strip("/").split("/") if p]
    if len(parts) > 1 and len(parts[0]) == 1:  # drop the leading letter folder
        parts = parts[1:]
    return " ".join(" ".join(reversed(parts)).replace("_", " ").split())


# ---------------------------------------------------------------------------------- splits
def holdout(keys: Sequence[str], labels: Sequence[int], part: str,
            fraction: float = VAL_FRACTION, max_per_class: int | None = None) -> list[int]:
    """Indices of the ``train`` or ``val`` part of a training list that has no official val split.

    Per class, the ``fraction`` of images (at least one when a class has two or more, at most
    ``max_per_class``) whose SHA-256 of the relative path sorts first form the validation part.
    The choice depends only on the file names, so it is the same on every machine and for every
    seed.
    """
    if part not in ("train", "val"):
        raise ValueError(part)
    by_class: dict[int, list[int]] = {}
    for i, lab in enumerate(labels):
        by_class.setdefault(int(lab), []).append(i)
    val: set[int] = set()
    for idx in by_class.values():
        if len(idx) < 2:
            continue
        n = max(1, int(round(fraction * len(idx))))
        if max_per_class is not None:
            n = min(n, max_per_class)
        ranked = sorted(idx, key=lambda i: hashlib.sha256(keys[i].encode()).hexdigest())
        val.update(ranked[:n])
    return [i for i in range(len(keys)) if (i in val) == (part == "val")]


def select(items: Sequence, idx: Sequence[int]) -> list:
    return [items[i] for i in idx]


def make_dataset(info: DatasetInfo, names: Sequence[str], paths: Sequence[Path],
                 labels: Sequence[int], root: Path, split: str) -> ImageDataset:
    labels = np.asarray(labels, dtype=np.int64)
    if len(paths) == 0:
        raise fail(info, root, f"the {split} split lists no images")
    if labels.min() < 0 or labels.max() >= len(names):
        bad = int(labels[(labels < 0) | (labels >= len(names))][0])
        raise fail(info, root, f"label {bad} is outside 0..{len(names) - 1}")
    return ImageDataset(info.key, list(names), list(paths), labels, domain=info.domain,
                        root=str(root), split=split)


def load_mat(info: DatasetInfo, root: Path, path: Path, what: str) -> dict:
    """A MATLAB ``.mat`` file (official Flowers102 / Stanford Cars metadata), read with SciPy."""
    require_file(info, root, path, what)
    try:
        from scipy.io import loadmat
    except ImportError:
        raise DatasetError(f"{info.title}: reading {str(path)!r} needs SciPy (pip install scipy); "
                           "or use the CoOp split file instead of the official .mat files") from None
    try:
        return loadmat(str(path), squeeze_me=True)
    except Exception as e:
        raise DatasetError(f"{info.title}: cannot read {str(path)!r} as a .mat file ({e})") from None
