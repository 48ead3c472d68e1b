"""coderclip: CLIP image classification with CODER (cross-modal neighbour representations).

Typical use::

    import coderclip
    encoder = coderclip.load_encoder("open_clip:ViT-B-32:openai")
    clf = coderclip.CoderClassifier(encoder, "food101").fit()
    clf.predict(["pizza.jpg"])

Public names are imported lazily, so that ``import coderclip`` (and ``coderclip --help``) does not
pay for importing torch until a model or classifier is actually used.
"""

from __future__ import annotations

import importlib

from ._version import __version__
from .errors import (CacheError, CoderClipError, ConfigError, DatasetError, ImageReadError,
                     KnowledgeError, ModelLoadError)
from .knowledge import ClassKnowledge, Knowledge, load_knowledge

_LAZY = {
    "CoderClassifier": "classifier", "METHODS": "classifier",
    "Encoder": "encoders", "load_encoder": "encoders",
    "TextBank": "bank",
    "evaluate": "evaluation",
    "FeatureSet": "features", "load_features": "features", "save_features": "features",
}

__all__ = [
    "__version__", "CacheError", "ClassKnowledge", "CoderClipError", "ConfigError", "DatasetError",
    "ImageReadError", "Knowledge", "KnowledgeError", "ModelLoadError", "load_knowledge", *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'coderclip' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
