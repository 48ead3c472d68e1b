"""Knowledge packs and class lists shipped inside the package, located by name (files only: loading a
pack is :func:`coderclip.knowledge.load_pack`)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import DatasetError, KnowledgeError

_PACKS = "data/packs"
_CLASSNAMES = "data/classnames"

#: datasets that share another dataset's classes, and so its pack and class list
ALIASES = {"imagenet_v2": "imagenet"}


def _dir(sub: str) -> Path:
    return Path(str(resources.files("coderclip").joinpath(sub)))


def available_packs() -> list[str]:
    """Names of the shipped knowledge packs (e.g. ``food101``)."""
    d = _dir(_PACKS)
    return sorted(p.stem for p in d.glob("*.json")) if d.is_dir() else []


def has_pack(name: str) -> bool:
    """Whether ``name`` (a pack or a dataset that shares one, e.g. ``imagenet_v2``) is shipped."""
    return ALIASES.get(name, name) in available_packs()


def pack_path(name: str) -> Path:
    name = ALIASES.get(name, name)
    if not has_pack(name):
        raise KnowledgeError(f"no shipped knowledge pack named {name!r}; available: "
                             f"{', '.join(available_packs()) or 'none'}")
    return _dir(_PACKS) / f"{name}.json"


def shipped_class_names(dataset: str) -> list[str]:
    """A standard dataset's class names in its label order (``data/classnames/<dataset>.txt``)."""
    path = _dir(_CLASSNAMES) / f"{ALIASES.get(dataset, dataset)}.txt"
    if not path.is_file():
        raise DatasetError(f"no shipped class list for dataset {dataset!r}")
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
