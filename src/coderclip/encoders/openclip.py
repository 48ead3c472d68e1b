"""open_clip backend: any architecture with a pretrained tag, a local checkpoint or a hub/local folder."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
import sys
from pathlib import Path

import torch

from ..errors import ModelLoadError
from .base import Encoder, read_logit_scale
from .device import resolve_device, resolve_dtype
from .fingerprint import weights_fingerprint
from .hub import host_reachable, hub_endpoint, hub_offline_mode, hub_reachable
from .weights import assign_weights, parameters_on_meta, read_state_dict

log = logging.getLogger(__name__)

_PRECISION_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
_HF_WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
#: weight files open_clip looks for in a ``local-dir:`` folder, most preferred first
_LOCAL_WEIGHT_PATTERNS = (*_HF_WEIGHT_FILES, "*.safetensors", "*.bin", "*.pth", "*.pt")


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
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        self.model_name, self.pretrained = model, pretrained
        weights_id, offline = _check_weights(model, pretrained, cache_dir)
        cfg = _model_config(model)
        open_clip = import_open_clip(needs_transformers=_needs_transformers(cfg),
                                     needs_timm=_needs_timm(cfg))
        try:
            with hub_offline_mode(offline):
                clip, preprocess = create_model(model, pretrained, self.dtype, self.device, cache_dir)
            tokenizer = open_clip.get_tokenizer(model, cache_dir=cache_dir) if _takes_cache_dir() \
                else open_clip.get_tokenizer(model)
        except ModelLoadError:
            raise
        except Exception as e:  # open_clip raises RuntimeError/ValueError/FileNotFoundError/KeyError
            raise ModelLoadError(_load_failure(model, pretrained, e)) from e
        self.model = clip.eval()
        self.logit_scale, self.logit_bias, self.probability = read_logit_scale(clip)
        if weights_id == "random-init":  # two random models must not share cached embeddings
            weights_id = f"random-init:{parameters_fingerprint(self.model)}"
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.context_length = getattr(tokenizer, "context_length", None)
        self.embed_dim = _embed_dim(self.model, self.tokenizer, self.device)
        self.name = f"open_clip:{model}" + (f":{pretrained}" if pretrained else "")
        arch = "local-dir" if model.startswith("local-dir:") else model  # content, not location
        self.identity = (f"open_clip|{arch}|{weights_id}|{_PRECISION_NAMES[self.dtype]}"
                         f"|{self.device.type}")
        self.trim_text = trim_text and _memoised_check(
            "trim_text", self.identity,
            lambda: _trimmed_text_matches(self.model, self.tokenizer, self.device))

    def _encode_image_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self.tokenizer(texts).to(self.device)
        if self.trim_text:
            return encode_text_trimmed(self.model, tokens)
        return self.model.encode_text(tokens)


#: open_clip's optional libraries, each imported in ``try``/``except ImportError`` by the modules
#: that use it, and which of them (re-run once the library is there) see it.
OPTIONAL_LIBRARIES = {"transformers": ("hf_model", "coca_model"), "timm": ("timm_model",)}


def import_open_clip(needs_transformers: bool = False, needs_timm: bool = False):
    """``import open_clip`` without its optional libraries, unless a model needs them.

    open_clip imports transformers (about a second and hundreds of MB of modules) and timm at
    start-up, only for its optional Hugging Face text towers (``open_clip.hf_model``), CoCa's
    caption generation and timm vision towers (``open_clip.timm_model``); those modules wrap the
    import in ``try``/``except ImportError`` and every other model works without it. So while
    open_clip itself is imported, the libraries are marked as not importable
    (``sys.modules[name] = None``, Python's documented way to make one import fail) and unmarked
    right after. ``needs_transformers=True`` (a Hugging Face text tower or CoCa) or
    ``needs_timm=True`` (a timm vision tower) imports the library and re-runs the modules that
    use it, so that they see it.
    """
    needed = {"transformers": needs_transformers, "timm": needs_timm}
    if "open_clip" not in sys.modules:
        blocked = [name for name in OPTIONAL_LIBRARIES if not needed[name] and name not in sys.modules]
        for name in blocked:
            sys.modules[name] = None  # type: ignore[assignment]
        try:
            import open_clip
        finally:
            for name in blocked:
                if name in sys.modules and sys.modules[name] is None:
                    del sys.modules[name]
    import open_clip

    for name, modules in OPTIONAL_LIBRARIES.items():
        first = getattr(open_clip, modules[0])
        if needed[name] and getattr(first, name, None) is None and importlib.util.find_spec(name) is not None:
            for module in modules:
                importlib.reload(getattr(open_clip, module))
    return open_clip


def _model_config(model: str) -> dict | None:
    """The open_clip model config of ``model`` (a registered name or ``local-dir:``), or ``None``
    when it cannot be read without downloading (hub models)."""
    if model.startswith("hf-hub:"):
        return None
    if model.startswith("local-dir:"):
        try:
            return json.loads((Path(model[len("local-dir:"):]).expanduser()
                               / "open_clip_config.json").read_text()).get("model_cfg", {})
        except (OSError, ValueError):
            return {}
    return import_open_clip().get_model_config(model.replace("/", "-")) or {}


def _needs_transformers(cfg: dict | None) -> bool:
    """Whether an open_clip model (its :func:`_model_config`) may need transformers: a Hugging
    Face text tower or tokenizer, or CoCa. Hub models are not inspected before download (``cfg``
    is ``None``), so they count as needing it."""
    if cfg is None:
        return True
    text = cfg.get("text_cfg", {}) or {}
    return bool("hf_model_name" in text or "hf_tokenizer_name" in text or "multimodal_cfg" in cfg)


def _needs_timm(cfg: dict | None) -> bool:
    """Whether an open_clip model (its :func:`_model_config`) may need timm: a timm vision tower
    (hub models count as yes)."""
    return cfg is None or bool((cfg.get("vision_cfg", {}) or {}).get("timm_model_name"))


def create_model(model: str, pretrained: str | None, dtype: torch.dtype, device: torch.device,
                 cache_dir: str | None = None):
    """``(model, preprocess)`` for an open_clip architecture and its checkpoint, holding the
    weights once in memory: the architecture is built with its parameters on the meta device,
    then the memory-mapped checkpoint's tensors become the parameters (see ``weights.py``); the
    checkpoint must hold exactly the architecture's keys. Random weights (``pretrained=None``
    with a plain architecture name) and big_vision ``.npz`` checkpoints take open_clip's own path.
    """
    open_clip = import_open_clip()
    precision = _PRECISION_NAMES[dtype]
    checkpoint = _checkpoint_file(model, pretrained, cache_dir)
    if checkpoint is None or checkpoint.suffix in (".npz", ".npy"):
        clip, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=pretrained, precision=precision, device=device, cache_dir=cache_dir)
        return clip, preprocess
    with parameters_on_meta(), _quiet_random_init_warning():
        # device=None: open_clip then leaves the (meta) parameters where they are
        clip, _, preprocess = open_clip.create_model_and_transforms(
            model, pretrained=pretrained, load_weights=False, precision=precision, device=None,
            cache_dir=cache_dir)
    state = _as_open_clip_state(clip, read_state_dict(checkpoint))
    assign_weights(clip, state, str(checkpoint))
    return clip.to(device), preprocess


@contextlib.contextmanager
def _quiet_random_init_warning():
    """Drop open_clip's "initialized randomly" warning for the weightless skeleton we build (the
    weights are loaded right after); every other message passes."""
    root = logging.getLogger()

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")

    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _checkpoint_file(model: str, pretrained: str | None, cache_dir: str | None) -> Path | None:
    """The weights file open_clip would load for ``model``/``pretrained`` (downloading a tag or hub
    repo if needed), or ``None`` for a deliberately random model; a folder or hub repo with a
    config but no weights is an error, not a random model."""
    open_clip = import_open_clip()
    if model.startswith("local-dir:"):
        folder = Path(model[len("local-dir:"):]).expanduser()
        for pattern in _LOCAL_WEIGHT_PATTERNS:
            found = sorted(folder.glob(pattern))
            if found:
                return found[0]
        raise ModelLoadError(
            f"open_clip folder {str(folder)!r} has open_clip_config.json but no weights file "
            f"({', '.join(_LOCAL_WEIGHT_PATTERNS)}); save the model's state_dict there "
            "(e.g. safetensors.torch.save_file(model.state_dict(), 'open_clip_model.safetensors'))")
    if model.startswith("hf-hub:"):
        repo = model[len("hf-hub:"):]
        try:
            return Path(open_clip.pretrained.download_pretrained_from_hf(repo, cache_dir=cache_dir))
        except Exception as e:  # huggingface_hub raises several unrelated error types
            raise ModelLoadError(f"hub repository {repo!r} has no open_clip weights file "
                                 f"({', '.join(_HF_WEIGHT_FILES)}) that could be read: "
                                 f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
                                 ) from e
    if pretrained is None:
        return None
    path = Path(os.path.expanduser(pretrained))
    if path.is_file():
        return path
    cfg = open_clip.get_pretrained_cfg(model.replace("/", "-"), pretrained)
    return Path(open_clip.download_pretrained(cfg, cache_dir=cache_dir))


def _as_open_clip_state(model, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The adjustments open_clip's own checkpoint loader makes before loading: third-party
    layouts, the old text-tower key names, scalar-vs-1-d logit scale/bias, stale position ids,
    and position embeddings resized to the model's image grid and context length."""
    from open_clip.convert import convert_state_dict
    from open_clip.model import (convert_to_custom_text_state_dict, resize_pos_embed,
                                 resize_text_pos_embed)

    state = convert_state_dict(model, state)
    if "positional_embedding" in state and not hasattr(model, "positional_embedding"):
        state = convert_to_custom_text_state_dict(state)
    for key in ("logit_scale", "logit_bias"):
        target = getattr(model, key, None)
        if key in state and target is not None and state[key].ndim != target.ndim:
            state[key] = state[key].reshape(target.shape)
    if "logit_bias" not in state and getattr(model, "logit_bias", None) is not None \
            and "logit_scale" in state:  # a CLIP checkpoint in a SigLIP-style model: bias 0
        state["logit_bias"] = torch.zeros_like(state["logit_scale"])
    stale = "text.transformer.embeddings.position_ids"  # newer transformers do not store them
    if stale in state and stale not in dict(model.named_buffers()):
        del state[stale]
    resize_pos_embed(state, model)
    resize_text_pos_embed(state, model)
    return state


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


def _embed_dim(model, tokenizer, device: torch.device) -> int:
    """The embedding width, read from the text projection where it has one (no forward pass),
    else from encoding one text."""
    proj = getattr(model, "text_projection", None)
    if isinstance(proj, torch.nn.Linear):
        return int(proj.out_features)
    if isinstance(proj, torch.Tensor) and proj.ndim == 2:
        return int(proj.shape[1])
    with torch.inference_mode():
        return int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])


def _memoised_check(name: str, identity: str, check) -> bool:
    """``check()``, remembered on disk for this encoder identity and these library versions (the
    result depends on nothing else), so that a warm start skips its forward passes."""
    import hashlib

    from .. import paths
    from .._io import atomic_write_text

    open_clip = import_open_clip()
    key = hashlib.sha256(f"{name}|{identity}|{open_clip.__version__}|{torch.__version__}".encode())
    memo = paths.cache_dir() / "checks" / f"{name}-{key.hexdigest()[:32]}.json"
    try:
        return bool(json.loads(memo.read_text())[name])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    result = bool(check())
    try:
        atomic_write_text(memo, json.dumps({"identity": identity, name: result}))
    except OSError:
        pass  # a read-only cache only costs the check next time
    return result


def _takes_cache_dir() -> bool:
    import inspect

    open_clip = import_open_clip()
    return "cache_dir" in inspect.signature(open_clip.get_tokenizer).parameters


def _check_weights(model: str, pretrained: str | None, cache_dir: str | None) -> tuple[str, bool]:
    """Return (weights identity, use offline mode) or raise a clear error within seconds when the
    weights are neither on disk nor downloadable."""
    open_clip = import_open_clip()

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
