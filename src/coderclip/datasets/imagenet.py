"""ImageNet-1k (ILSVRC 2012) and ImageNet-V2. Class names: ``open_clip.zero_shot_metadata``'s
IMAGENET_CLASSNAMES (the cleaned names CLIP papers use), in WordNet-id order."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import DatasetError
from ..images import IMAGE_SUFFIXES
from .base import ImageDataset
from ._layout import (LARGE_VAL_PER_CLASS, DatasetInfo, check_split, fail, holdout,
                      make_dataset, select)

_WNID = re.compile(r"^n\d{8}$")


def imagenet_class_names() -> list[str]:
    """The 1000 names of ``open_clip.zero_shot_metadata.IMAGENET_CLASSNAMES``, made unique.

    Read from open_clip's file as a literal (importing open_clip itself takes seconds), or taken
    from the module when it is already imported.
    """
    import ast
    import importlib.util
    import sys

    module = sys.modules.get("open_clip.zero_shot_metadata")
    if module is not None:
        names = list(module.IMAGENET_CLASSNAMES)
    else:
        spec = importlib.util.find_spec("open_clip")
        if spec is None or not spec.submodule_search_locations:
            raise DatasetError("ImageNet class names come from open_clip, which is not installed")
        source = Path(list(spec.submodule_search_locations)[0]) / "zero_shot_metadata.py"
        names = []
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and getattr(node.targets[0], "id", None) == "IMAGENET_CLASSNAMES"):
                names = list(ast.literal_eval(node.value))
    if len(names) != 1000:
        raise DatasetError(f"open_clip's IMAGENET_CLASSNAMES has {len(names)} names, expected 1000")
    for i, (listed, unique) in _DISAMBIGUATED.items():
        if names[i] == listed:
            names[i] = unique
    return names


#: open_clip's cleaned list names two pairs of classes alike ("missile" at 657 and 744,
#: "sunglasses" at 836 and 837); class names are keys in coderclip, so the second of each pair takes
#: its WordNet lemma (n04008634 "projectile", n04355933 "sunglass").
_DISAMBIGUATED = {744: ("missile", "projectile"), 836: ("sunglasses", "sunglass")}


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(info: DatasetInfo, root: Path, folder: Path, pattern) -> list[Path]:
    if not folder.is_dir():
        raise fail(info, root, f"missing folder {str(folder)!r}")
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir() and pattern(p.name))
    if not subdirs and _images(folder):
        raise fail(info, root, f"the images in {str(folder)!r} are not sorted into class folders; "
                               "sort them into one folder per class first")
    if len(subdirs) != info.n_classes:
        raise fail(info, root, f"{str(folder)!r} has {len(subdirs)} class folders, expected "
                               f"{info.n_classes}")
    return subdirs


def read(info: DatasetInfo, root: str | Path, split: str) -> ImageDataset:
    """ImageNet (``split``: train, val or test)."""
    check_split(info, split)
    base = Path(root).expanduser()
    if not base.is_dir():
        raise fail(info, base, f"the dataset folder {str(base)!r} does not exist")
    if (base / "images").is_dir() and not (base / "val").is_dir():
        base = base / "images"
    folder = base / ("val" if split == "test" else "train")
    subdirs = _class_folders(info, base, folder, _WNID.match)
    paths, labels = [], []
    for label, d in enumerate(subdirs):
        files = _images(d)
        paths += files
        labels += [label] * len(files)
    if split != "test":
        keep = holdout([f"{p.parent.name}/{p.name}" for p in paths], labels, split,
                       max_per_class=LARGE_VAL_PER_CLASS)
        paths, labels = select(paths, keep), select(labels, keep)
    return make_dataset(info, imagenet_class_names(), paths, labels, base, split)


def read_v2(info: DatasetInfo, root: str | Path, split: str) -> ImageDataset:
    """ImageNet-V2 (test split only): folders named by ImageNet label index."""
    check_split(info, split, ("test",))
    base = Path(root).expanduser()
    if not base.is_dir():
        raise fail(info, base, f"the dataset folder {str(base)!r} does not exist")
    if not (base / "0").is_dir():
        variants = sorted(p for p in base.glob("imagenetv2-*") if p.is_dir())
        if variants:
            base = variants[0]
    subdirs = _class_folders(info, base, base, str.isdigit)
    numbers = sorted(int(d.name) for d in subdirs)
    if numbers != list(range(1000)):
        raise fail(info, base, "the class folders are not named 0..999")
    paths, labels = [], []
    for d in sorted(subdirs, key=lambda d: int(d.name)):
        files = _images(d)
        paths += files
        labels += [int(d.name)] * len(files)
    return make_dataset(info, imagenet_class_names(), paths, labels, base, split)


