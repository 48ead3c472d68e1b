"""Hugging Face transformers backend: ``CLIPModel``, ``SiglipModel`` and other dual encoders that
offer ``get_image_features`` / ``get_text_features``, from a hub id or a local folder."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .base import Encoder, read_logit_scale
from .device import resolve_device, resolve_dtype
from .fingerprint import weights_fingerprint
from .hub import hub_endpoint, hub_reachable
from .weights import raise_for_keys

log = logging.getLogger(__name__)

#: files that hold a tokenizer's vocabulary (one of them must be in a local model folder)
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "spiece.model", "tokenizer.model",
                    "sentencepiece.bpe.model")
#: weight files transformers reads from a folder
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")

#: model types whose text tower was trained on inputs padded to a fixed length (no attention mask)
_FIXED_LENGTH_TEXT = {"siglip", "siglip2"}


class HFClipEncoder(Encoder):
    """A transformers dual encoder loaded with ``AutoModel`` from ``model_id`` (hub id or folder)."""

    def __init__(self, model_id: str, device: str | None = None, precision: str | None = None,
                 revision: str | None = None, cache_dir: str | None = None):
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        folder = Path(model_id).expanduser()
        local = folder.is_dir()
        if not local and (model_id.startswith((".", "/", "~")) or model_id.count("/") > 1):
            raise ModelLoadError(f"model folder {model_id!r} does not exist")
        kwargs = dict(revision=revision, cache_dir=cache_dir)
        source = str(folder) if local else model_id
        if local:
            _check_folder(folder)
        try:
            parts = self._load(AutoModel, AutoTokenizer, AutoImageProcessor, source, kwargs,
                               local_only=True)
        except (OSError, ValueError) as e:
            if local:
                raise ModelLoadError(f"could not load a transformers model from folder "
                                     f"{model_id!r}: {_first_line(e)}") from e
            if not hub_reachable():
                raise ModelLoadError(
                    f"the transformers model {model_id!r} is not in the local Hugging Face cache and "
                    f"{hub_endpoint()} cannot be reached. Download it once where there is network "
                    "access, or save it to a folder (model.save_pretrained + processor.save_pretrained) "
                    "and pass --model hf:/path/to/folder") from e
            try:
                parts = self._load(AutoModel, AutoTokenizer, AutoImageProcessor, source, kwargs,
                                   local_only=False)
            except (OSError, ValueError) as e2:
                raise ModelLoadError(f"could not load transformers model {model_id!r}: "
                                     f"{_first_line(e2)}") from e2
        (model, info), self.tokenizer, self.image_processor = parts
        _check_loaded(model, info, model_id)
        _check_tokenizer(self.tokenizer, model_id)
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ModelLoadError(
                f"transformers model {model_id!r} ({type(model).__name__}) is not a dual image-text "
                "encoder: it lacks get_image_features/get_text_features")
        self.model = model.to(self.device, self.dtype).eval()
        self.logit_scale, self.logit_bias, self.probability = read_logit_scale(model)
        self.model_type = getattr(model.config, "model_type", "")
        self.fixed_length = self.model_type in _FIXED_LENGTH_TEXT
        self.context_length = _context_length(model.config)
        self.preprocess = self._preprocess
        with torch.inference_mode():
            self.embed_dim = int(self._encode_text_batch(["a"]).shape[-1])
        weights = f"sha256:{weights_fingerprint(folder)}" if local else \
            f"{model_id}@{getattr(model.config, '_commit_hash', None) or revision or 'main'}"
        self.name = f"hf:{model_id}"
        self.identity = f"hf|{weights}|{str(self.dtype).replace('torch.', '')}|{self.device.type}"

    @staticmethod
    def _load(AutoModel, AutoTokenizer, AutoImageProcessor, source, kwargs, local_only):
        kw = dict(kwargs, local_files_only=local_only)
        return (AutoModel.from_pretrained(source, output_loading_info=True, **kw),
                AutoTokenizer.from_pretrained(source, **kw),
                AutoImageProcessor.from_pretrained(source, **kw))

    def _preprocess(self, image) -> torch.Tensor:
        return self.image_processor(images=image.convert("RGB"), return_tensors="pt")["pixel_values"][0]

    def _encode_image_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        return _features(self.model.get_image_features(pixel_values=pixels))

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        if self.fixed_length:
            tok = self.tokenizer(texts, padding="max_length", truncation=True,
                                 max_length=self.context_length, return_tensors="pt")
        else:
            tok = self.tokenizer(texts, padding=True, truncation=True,
                                 max_length=self.context_length, return_tensors="pt")
        tok = {k: v.to(self.device) for k, v in tok.items() if k in ("input_ids", "attention_mask")}
        if self.fixed_length:
            tok.pop("attention_mask", None)
        return _features(self.model.get_text_features(**tok))


def _check_folder(folder: Path) -> None:
    """A local model folder must hold weights and a tokenizer vocabulary: without them
    transformers would build random weights or an empty tokenizer (and warn at most)."""
    if (folder / "config.json").is_file() and not any((folder / f).is_file() for f in _WEIGHT_FILES):
        raise ModelLoadError(f"model folder {str(folder)!r} has config.json but no weights "
                             f"({', '.join(_WEIGHT_FILES)}); save them with model.save_pretrained")
    if not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        raise ModelLoadError(f"model folder {str(folder)!r} has no tokenizer (none of "
                             f"{', '.join(_TOKENIZER_FILES)}); save one there with "
                             "tokenizer.save_pretrained (or processor.save_pretrained)")


def _check_loaded(model, info: dict, model_id: str) -> None:
    """Every weight of the architecture came from the checkpoint and none was left over
    (transformers fills missing weights randomly, with a warning at most)."""
    expected = len(model.state_dict())
    raise_for_keys(info.get("missing_keys", ()), info.get("unexpected_keys", ()), expected, model_id)
    mismatched = info.get("mismatched_keys") or ()
    if mismatched:
        raise ModelLoadError(f"checkpoint {model_id!r} does not fit the model architecture: "
                             f"{len(mismatched)} weight(s) have another shape")


def _check_tokenizer(tokenizer, model_id: str) -> None:
    """Refuse a tokenizer that cannot tell texts apart: transformers builds an almost empty one
    (only special tokens) from a folder without tokenizer files, and every class would get the
    same embedding."""
    probe = ["a photo of a dog", "a photo of a cat", "red"]
    ids = [tuple(tokenizer(t)["input_ids"]) for t in probe]
    if len(set(ids)) < len(ids):
        raise ModelLoadError(
            f"the tokenizer of transformers model {model_id!r} cannot tell texts apart (it has "
            f"{len(tokenizer)} tokens): the tokenizer files (tokenizer.json, or vocab.json and "
            "merges.txt) are missing or broken; save them next to the model with "
            "tokenizer.save_pretrained(folder) or processor.save_pretrained(folder)")


def _features(out) -> torch.Tensor:
    """transformers 4 returns a tensor; transformers 5 returns an output whose ``pooler_output``
    holds the projected features."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise ModelLoadError(f"unexpected feature output type {type(out).__name__}")
    return pooled


def _context_length(config) -> int | None:
    text = getattr(config, "text_config", None)
    return getattr(text, "max_position_embeddings", None) if text is not None else None


def _first_line(e: Exception) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__
