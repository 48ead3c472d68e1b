"""The language-model interface: chat messages in, text (and token counts) out.

Backends raise :class:`TransientLLMError` for failures worth retrying (timeouts, 429, 5xx, lost
connections), :class:`FatalLLMError` for failures that would hit every request (bad key, unknown
model) and plain :class:`~coderclip.errors.LLMError` otherwise. Retrying is the caller's job.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any

from ...errors import LLMError


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
