"""What produced a report: package, model (with weight-file hashes), knowledge, templates, machine."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch

from .._io import file_sha256
from .._version import __version__
from ..bank.textbank import TEXT_TYPES, TextBank
from ..encoders.base import Encoder
from ..encoders.fingerprint import _file_digest
from ..knowledge import Knowledge
from ..knowledge.templates import TEMPLATES_VERSION


def provenance(encoder: Encoder | None, knowledge: Knowledge, bank: TextBank | None = None,
               knowledge_source: str | None = None, extra: dict | None = None,
               labels_read_after_predictions: bool | None = None) -> dict:
    """What produced a report: package, model, knowledge, templates, settings, machine, and (when
    given) what a :class:`~coderclip.evaluation.guard.LabelGuard` measured about label reads."""
    kfile = None
    if knowledge_source and os.path.isfile(knowledge_source):
        kfile = {"path": os.path.abspath(knowledge_source), "sha256": file_sha256(knowledge_source)}
    out = {
        "coderclip_version": __version__,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None,
        "model": encoder.describe() if encoder is not None else None,
        "knowledge": {"name": knowledge.name, "source": knowledge_source, "file": kfile,
                      "content_sha256": bank.knowledge_digest if bank else None,
                      "domain": knowledge.domain, "classes": len(knowledge),
                      "provenance": knowledge.provenance},
        "templates_version": bank.templates_version if bank else TEMPLATES_VERSION,
        "text_bank": {t: bank.count(t) for t in TEXT_TYPES} if bank is not None else None,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "seed": None,
        "labels_read_after_predictions": labels_read_after_predictions,
    }
    if extra:
        out.update(extra)
    return out


def weights_record(encoder) -> dict:
    """The model's weight files with their SHA-256, where they can be found on disk."""
    files = []
    for f in _weight_files(encoder):
        try:
            files.append({"path": str(f), "sha256": _file_digest(f)})
        except OSError:
            pass
    return {"name": encoder.name, "identity": encoder.identity, "files": files}


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def _weight_files(encoder) -> list[Path]:
    def folder_files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)

    model = getattr(encoder, "model_name", None)
    pretrained = getattr(encoder, "pretrained", None)
    if model is not None:  # open_clip
        if model.startswith("local-dir:"):
            return folder_files(Path(model[len("local-dir:"):]).expanduser())
        if pretrained and Path(os.path.expanduser(pretrained)).is_file():
            return [Path(os.path.expanduser(pretrained))]
        if model.startswith("hf-hub:"):
            return _hf_cached(model[len("hf-hub:"):], ("open_clip_model.safetensors",
                                                      "open_clip_pytorch_model.bin"))
        if pretrained:
            try:
                import open_clip

                cfg = open_clip.get_pretrained_cfg(model, pretrained) or {}
            except Exception:
                cfg = {}
            repo = (cfg.get("hf_hub") or "").strip("/")
            if repo:
                return _hf_cached(repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))
            url = cfg.get("url") or ""
            cached = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
            return [cached] if url and cached.is_file() else []
        return []
    name = getattr(encoder, "name", "")
    if name.startswith("hf:"):  # transformers
        folder = Path(name[3:]).expanduser()
        if folder.is_dir():
            return folder_files(folder)
        return _hf_cached(name[3:], ("model.safetensors", "pytorch_model.bin"))
    return []


def _hf_cached(repo: str, names: Sequence[str]) -> list[Path]:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return []
    out = []
    for n in names:
        try:
            found = try_to_load_from_cache(repo, n)
        except Exception:
            continue
        if isinstance(found, str) and os.path.isfile(found):
            out.append(Path(found))
    return out
