"""open_clip backend: any architecture with a pretrained tag, a local checkpoint or a hub/local folder."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .base import Encoder
from .device import resolve_device, resolve_dtype
from .fingerprint import weights_fingerprint
from .hub import host_reachable, hub_endpoint, hub_offline_mode, hub_reachable

log = logging.getLogger(__name__)

_PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class OpenClipEncoder(Encoder):
    """An open_clip model.

    ``model`` is a built-in architecture name (``ViT-B-32``), ``hf-hub:org/repo`` or
    ``local-dir:/folder`` (a folder with ``open_clip_config.json`` and weights). ``pretrained`` is a
    tag (``openai``, ``laion2b_s34b_b79k``), a checkpoint file, or ``None`` for random weights.

    ``trim_text``: run the text tower only up to the longest text of each batch instead of the
    full context (77 tokens), where that gives the same embeddings: the standard CLIP text tower
    (causal mask, end-of-text pooling). Checked against the full path once at load time; other
    towers always use the full path. ``self.trim_text`` says whether it is in use.
    """

    def __init__(self, model: str, pretrained: str | None = None, device: str | None = None,
                 precision: str | None = None, cache_dir: str | None = None, trim_text: bool = True):
        import open_clip

        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        self.model_name, self.pretrained = model, pretrained
        weights_id, offline = _check_weights(model, pretrained, cache_dir)
        try:
            with hub_offline_mode(offline):
                clip, _, preprocess = open_clip.create_model_and_transforms(
                    model, pretrained=pretrained, precision=_PRECISION_NAMES[self.dtype],
                    device=self.device, cache_dir=cache_dir)
            tokenizer = open_clip.get_tokenizer(model, cache_dir=cache_dir) if _takes_cache_dir() \
                else open_clip.get_tokenizer(model)
        except ModelLoadError:
            raise
        except Exception as e:  # open_clip raises RuntimeError/ValueError/FileNotFoundError/KeyError
            raise ModelLoadError(_load_failure(model, pretrained, e)) from e
        self.model = clip.eval()
        if weights_id == "random-init":  # two random models must not share cached embeddings
            weights_id = f"random-init:{parameters_fingerprint(self.model)}"
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.context_length = getattr(tokenizer, "context_length", None)
        with torch.inference_mode():
            probe = self.model.encode_text(self.tokenizer(["a"]).to(self.device))
        self.embed_dim = int(probe.shape[-1])
        self.trim_text = trim_text and _trimmed_text_matches(self.model, self.tokenizer, self.device)
        self.name = f"open_clip:{model}" + (f":{pretrained}" if pretrained else "")
        arch = "local-dir" if model.startswith("local-dir:") else model  # content, not location
        self.identity = (f"open_clip|{arch}|{weights_id}|{_PRECISION_NAMES[self.dtype]}"
                         f"|{self.device.type}")

    def _encode_image_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        if self.trim_text:
            return encode_text_trimmed(self.model, tokens)
        return self.model.encode_text(tokens)


def parameters_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 (16 hex digits) of a model's parameters and buffers, in state-dict order."""
    import hashlib

    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().to("cpu").reshape(-1).contiguous().view(torch.uint8).numpy().data)
    return h.hexdigest()[:16]


def supports_trimmed_text(model) -> bool:
    """Whether ``model``'s text tower is open_clip's standard CLIP one, for which positions after a
    text's end-of-text token cannot change its embedding: causal attention mask and pooling at
    the end-of-text token (``argmax`` or ``eos``)."""
    from open_clip.model import CLIP

    if not isinstance(model, CLIP) or type(model).encode_text is not CLIP.encode_text:
        return False
    if getattr(model, "text_pool_type", None) not in ("argmax", "eos"):
        return False
    mask, pos = getattr(model, "attn_mask", None), getattr(model, "positional_embedding", None)
    if mask is None or pos is None or mask.ndim != 2 or pos.ndim != 2 or mask.shape[0] != pos.shape[0]:
        return False
    causal = torch.ones(mask.shape, dtype=torch.bool, device=mask.device).triu(1)
    return bool(torch.isneginf(mask[causal]).all() and (mask[~causal] == 0).all())


def encode_text_trimmed(model, tokens: torch.Tensor) -> torch.Tensor:
    """open_clip ``CLIP.encode_text`` on ``tokens`` ``[B, context]`` cut after the last pooled
    (end-of-text) position of the batch: the same steps on ``L`` positions instead of the full
    context, so the cost follows the longest text, not the context length."""
    if model.text_pool_type == "argmax":
        end = tokens.argmax(dim=-1)
    else:
        end = (tokens == model.text_eos_id).int().argmax(dim=-1)
    L = int(end.max()) + 1
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens[:, :L]).to(cast_dtype)
    x = x + model.positional_embedding[:L].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:L, :L])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), end]
    if model.text_projection is not None:
        if isinstance(model.text_projection, torch.nn.Linear):
            x = model.text_projection(x)
        else:
            x = x @ model.text_projection
    return x


def _trimmed_text_matches(model, tokenizer, device: torch.device) -> bool:
    """True when the trimmed path is supported and gives the full path's embeddings on a probe."""
    if not supports_trimmed_text(model):
        return False
    try:
        with torch.inference_mode():
            tokens = tokenizer(["a photo of a small red bird on a branch.", "a dog"]).to(device)
            full = torch.nn.functional.normalize(model.encode_text(tokens).float(), dim=-1)
            fast = torch.nn.functional.normalize(encode_text_trimmed(model, tokens).float(), dim=-1)
    except Exception as e:  # an unexpected tower variant: keep the reference path
        log.debug("trimmed text encoding disabled: %s", e)
        return False
    tol = 1e-5 if model.transformer.get_cast_dtype() == torch.float32 else 2e-3  # fp16/bf16 towers
    ok = bool((full - fast).abs().max() <= tol)
    if not ok:
        log.debug("trimmed text encoding disabled: it differs from the full path on a probe")
    return ok


def _takes_cache_dir() -> bool:
    import inspect

    import open_clip

    return "cache_dir" in inspect.signature(open_clip.get_tokenizer).parameters


def _check_weights(model: str, pretrained: str | None, cache_dir: str | None) -> tuple[str, bool]:
    """Return (weights identity, use offline mode) or raise a clear error within seconds when the
    weights are neither on disk nor downloadable."""
    import open_clip

    if model.startswith("local-dir:"):
        folder = Path(model[len("local-dir:"):]).expanduser()
        if not (folder / "open_clip_config.json").is_file():
            raise ModelLoadError(f"open_clip folder {str(folder)!r} has no open_clip_config.json; "
                                 "a local-dir model needs the config and a weights file side by side")
        return f"sha256:{weights_fingerprint(folder)}", True
    if model.startswith("hf-hub:"):
        repo = model[len("hf-hub:"):]
        if _hf_cached(repo, "open_clip_config.json", cache_dir) and any(
                _hf_cached(repo, f, cache_dir) for f in _HF_WEIGHT_FILES):
            return f"hf-hub:{repo}", not hub_reachable()
        if not hub_reachable():
            raise ModelLoadError(_offline_message(model, None, hub_endpoint()))
        return f"hf-hub:{repo}", False
    if model.replace("/", "-") not in open_clip.list_models():
        raise ModelLoadError(
            f"unknown open_clip architecture {model!r}; use one of open_clip.list_models() "
            "(e.g. ViT-B-32, ViT-L-14), 'hf-hub:ORG/REPO' or 'local-dir:/path/to/folder'")
    if pretrained is None:
        log.warning("open_clip model %s has no pretrained weights: it is randomly initialised", model)
        return "random-init", False
    path = Path(os.path.expanduser(pretrained))
    if path.is_file():
        from .safe_load import check_checkpoint

        check_checkpoint(path)
        return f"sha256:{weights_fingerprint(path)}", True
    if path.suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt") or os.sep in pretrained:
        raise ModelLoadError(f"checkpoint file {pretrained!r} for open_clip model {model!r} does not exist")
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise ModelLoadError(
            f"open_clip has no pretrained tag {pretrained!r} for {model!r}; known tags: "
            f"{', '.join(tags) or 'none'}; or pass a checkpoint file path instead of a tag")
    repo = (cfg.get("hf_hub") or "").strip("/")
    if repo:
        if any(_hf_cached(repo, f, cache_dir) for f in _HF_WEIGHT_FILES):
            return f"{model}:{pretrained}", not hub_reachable()
        if hub_reachable():
            return f"{model}:{pretrained}", False
        raise ModelLoadError(_offline_message(model, pretrained, hub_endpoint()))
    url = cfg.get("url", "")
    cached = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
    if cached.is_file() or (url and host_reachable(url)):
        return f"{model}:{pretrained}", False
    raise ModelLoadError(_offline_message(model, pretrained, url))


def _hf_cached(repo: str, filename: str, cache_dir: str | None) -> bool:
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(repo, filename, cache_dir=cache_dir)
    except Exception:
        return False
    return isinstance(found, str) and os.path.isfile(found)


def _offline_message(model: str, pretrained: str | None, where: str) -> str:
    what = f"{model}" + (f" with pretrained weights {pretrained!r}" if pretrained else "")
    return (
        f"the weights for open_clip model {what} are not on this machine and {where} cannot be "
        "reached. Download them once where there is network access (they are cached under "
        "~/.cache/huggingface), or pass a local checkpoint: --model open_clip:ARCH:/path/to/"
        "checkpoint.pt, or --model open_clip:local-dir:/path/to/folder for a folder holding "
        "open_clip_config.json and open_clip_model.safetensors")


def _load_failure(model: str, pretrained: str | None, e: Exception) -> str:
    what = model + (f" ({pretrained})" if pretrained else "")
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return f"could not load open_clip model {what}: {msg}"
