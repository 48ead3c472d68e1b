"""A fitted :class:`~coderclip.classifier.CoderClassifier` as a folder, Hugging Face style: a
config JSON, the text bank as safetensors and the knowledge as JSON (no pickle), reloadable
anywhere without a text tower.

Folder contents: ``coderclip_config.json`` (format, settings, the encoder's identity, its logit
scale, bias and probability kind), ``text_bank.safetensors`` (texts, embeddings, entries),
``knowledge.json``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ._io import atomic_write_text
from ._version import __version__
from .bank.textbank import TextBank, knowledge_digest
from .errors import ConfigError
from .estimator import check_is_fitted

if TYPE_CHECKING:
    from .classifier import CoderClassifier
    from .encoders.base import Encoder

CONFIG_NAME = "coderclip_config.json"
BANK_NAME = "text_bank.safetensors"
KNOWLEDGE_NAME = "knowledge.json"
FORMAT = "coderclip-classifier"
VERSION = 1
#: The settings saved with a classifier (its ``__init__`` parameters that are not objects).
SETTINGS = ("method", "types", "rerank_k", "tau", "batch_size")
_PRECISIONS = {"fp32", "fp16", "bf16", "float32", "float16", "bfloat16"}
_DEVICES = {"cpu", "cuda", "mps", "xpu"}


def model_identity(identity: str) -> str:
    """The part of an encoder identity that names the model and its weights, without the
    precision and device it ran with (``open_clip|ViT-B-32|…|fp16|cuda`` → ``open_clip|ViT-B-32|…``):
    a bank built on a GPU serves the same model on a CPU."""
    parts = identity.split("|")
    if len(parts) > 2 and parts[-1] in _DEVICES and parts[-2] in _PRECISIONS:
        parts = parts[:-2]
    return "|".join(parts)


def save_classifier(clf: CoderClassifier, folder: str | os.PathLike) -> Path:
    """Write ``clf`` (fitted) to ``folder``; returns the folder."""
    check_is_fitted(clf, "tables_")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    bank = clf.bank_
    config = {
        "format": FORMAT, "version": VERSION, "coderclip_version": __version__,
        "settings": {k: (list(v) if isinstance(v, tuple) else v)
                     for k, v in ((k, getattr(clf, k)) for k in SETTINGS)},
        "encoder": {"identity": bank.encoder_identity,
                    "name": getattr(clf.encoder, "name", None), "embed_dim": bank.embed_dim,
                    "logit_scale": clf.model_scale_[0], "logit_bias": clf.model_scale_[1],
                    "probability": clf.model_scale_[2]},
        "classes": len(clf.classes_), "templates_version": bank.templates_version,
        "knowledge_digest": bank.knowledge_digest,
    }
    clf.knowledge_.save(folder / KNOWLEDGE_NAME)
    bank.save(folder / BANK_NAME)
    atomic_write_text(folder / CONFIG_NAME, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return folder


def load_classifier(cls, folder: str | os.PathLike, encoder: Encoder | None = None) -> CoderClassifier:
    """A fitted ``cls`` from a :func:`save_classifier` folder (see
    :meth:`~coderclip.classifier.CoderClassifier.from_pretrained`)."""
    from .knowledge import load_knowledge

    folder = Path(folder)
    config = _read_config(folder)
    bank = TextBank.load(folder / BANK_NAME)
    knowledge = load_knowledge(folder / KNOWLEDGE_NAME)
    if not bank.knowledge_digest == knowledge_digest(knowledge) == config["knowledge_digest"]:
        raise ConfigError(f"{folder}: the text bank and the knowledge file do not belong together "
                          "(different knowledge); save the classifier again")
    saved = config["encoder"]
    if encoder is not None:
        if model_identity(encoder.identity) != model_identity(saved["identity"]):
            raise ConfigError(f"{folder} was built with model {saved['identity']!r} but the encoder "
                              f"given is {encoder.identity!r}; load it with the model that built "
                              "it, or with no encoder and precomputed embeddings")
        bank.check_encoder(encoder)
    settings = dict(config["settings"])
    if settings.get("types") is not None:
        settings["types"] = tuple(settings["types"])
    clf = cls(encoder, knowledge, **settings)
    device = encoder.device if encoder is not None else torch.device("cpu")
    dtype = encoder.dtype if encoder is not None and device.type != "cpu" else torch.float32
    scale = (float(saved["logit_scale"]), float(saved["logit_bias"]), str(saved["probability"]))
    clf._fit_tables(knowledge, bank, device, dtype, scale)
    return clf


def _read_config(folder: Path) -> dict:
    path = folder / CONFIG_NAME
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{folder} holds no saved classifier ({CONFIG_NAME} is missing); "
                          "write one with CoderClassifier.save_pretrained") from None
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a coderclip classifier config")
    if config.get("version", 0) > VERSION:
        raise ConfigError(f"{path} was written by a newer coderclip (format version "
                          f"{config['version']}); upgrade coderclip to load it")
    for key in ("settings", "encoder", "classes", "knowledge_digest"):
        if key not in config:
            raise ConfigError(f"{path} lacks {key!r}; save the classifier again")
    return config
