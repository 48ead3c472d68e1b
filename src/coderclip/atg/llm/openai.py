"""OpenAI-compatible chat-completions backend (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio).

Uses the official ``openai`` client with its own retries switched off: the generator retries with
backoff and ``Retry-After`` itself, so that every attempt is counted and can be interrupted. The
API key is read from an environment variable and handed to the client only; it never appears in
identities, logs, errors or files.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any
from urllib.parse import urlsplit

from ...errors import ConfigError, LLMError
from ..retry import parse_retry_after
from .base import (LLM, ChatRequest, ChatResult, FatalLLMError, MalformedReply, RequestAdapted,
                   TransientLLMError)

log = logging.getLogger(__name__)

#: HTTP statuses worth retrying: request timeout, conflict, too early, rate limit, server errors.
_TRANSIENT_STATUS = {408, 409, 425, 429}
#: Placeholder key for local servers that ignore authentication (the client insists on one).
_NO_KEY = "not-needed"


def public_url(url: str | None) -> str | None:
    """``url`` without user info, query or fragment (safe to log and record)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}".rstrip("/")


class OpenAICompatibleLLM(LLM):
    """Chat completions through ``openai.OpenAI``.

    ``structured``: ``"auto"`` asks for JSON-schema output and falls back to plain lists for the
    rest of the run if the server rejects it; ``"on"`` insists; ``"off"`` never asks.
    """

    def __init__(self, model: str, *, base_url: str | None = None,
                 api_key_env: str | None = "OPENAI_API_KEY", key_required: bool = True,
                 timeout: float = 60.0, structured: str = "auto", provider: str = "openai") -> None:
        if structured not in ("auto", "on", "off"):
            raise ConfigError(f"structured output mode must be 'auto', 'on' or 'off', got {structured!r}")
        if timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {timeout!r}")
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.key_required = key_required
        self.timeout = float(timeout)
        self.structured_mode = structured
        self.provider = provider
        self._structured = structured != "off"
        # adapted on the fly when a server rejects them (newer OpenAI models want
        # max_completion_tokens, reasoning models refuse a temperature)
        self._length_param = "max_tokens"
        self._send_temperature = True
        self._client: Any = None
        self._lock = threading.Lock()
        where = f"@{public_url(base_url)}" if base_url and provider == "openai" else ""
        self.identity = f"{provider}:{model}{where}"

    # ------------------------------------------------------------------ setup
    @property
    def structured(self) -> bool:
        return self._structured

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"llm": self.identity, "backend": "openai-compatible"}
        url = public_url(self.base_url) or public_url(os.environ.get("OPENAI_BASE_URL"))
        if url:
            out["base_url"] = url
        return out

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            if not key.isascii() or not key.isprintable():
                raise FatalLLMError(
                    f"the API key in ${self.api_key_env} contains characters that cannot be sent in "
                    "an HTTP header (non-ASCII, or control characters such as a line break): it was "
                    "probably copied with extra characters; set it again")
            return key.strip()
        if self.key_required:
            name = self.api_key_env or "OPENAI_API_KEY"
            raise FatalLLMError(
                f"no API key: set the environment variable {name} (or name another variable with "
                "--api-key-env); keys are read from the environment only")
        return _NO_KEY

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    import openai
                except ImportError as e:  # pragma: no cover - dependency is declared
                    raise LLMError("the 'openai' package is needed for API backends: "
                                   "pip install openai") from e
                kwargs: dict[str, Any] = {"api_key": self._api_key(), "timeout": self.timeout,
                                          "max_retries": 0}
                if self.base_url:
                    kwargs["base_url"] = self.base_url
                self._client = openai.OpenAI(**kwargs)
            return self._client

    def prepare(self) -> None:
        """Check the configuration (API key present) and that the server can be reached at all,
        before the first request: a server that is down fails the run in seconds, not after
        every question has waited out its retries."""
        self._get_client()
        self.probe()

    def probe(self) -> None:
        """Raise :class:`FatalLLMError` if nothing listens at the server's address. Any HTTP
        answer (even 401 or 404) counts as reachable: only the connection is tested."""
        import socket
        import urllib.error
        import urllib.request

        root = (self.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1")
        where = public_url(root)
        try:
            with urllib.request.urlopen(urllib.request.Request(root.rstrip("/") + "/models"),
                                        timeout=min(self.timeout, 10.0)):
                pass
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, (socket.timeout, TimeoutError)):
                return  # slow, not absent: the real requests have their own timeout and retries
            raise FatalLLMError(f"cannot reach the language-model server at {where} ({_short(reason)}); "
                                "is it running, and is --base-url right?") from None
        except ValueError as e:
            raise FatalLLMError(f"invalid server address {where!r} ({e}); check --base-url") from None

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    # ------------------------------------------------------------------ requests
    def chat(self, request: ChatRequest) -> ChatResult:
        import openai

        client = self._get_client()
        use_schema = self._structured and request.schema is not None
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in request.messages],
            self._length_param: request.max_tokens,
        }
        if self._send_temperature:
            kwargs["temperature"] = request.temperature
        if use_schema:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.schema, "strict": True},
            }
        where = public_url(self.base_url) or "the OpenAI API"
        try:
            response = client.chat.completions.create(**kwargs)
        except openai.APITimeoutError:
            raise TransientLLMError(f"no answer from {where} within {self.timeout:g} s") from None
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            raise TransientLLMError(f"cannot reach {where}: {_short(cause)}",
                                    connection=_is_refusal(cause)) from None
        except ValueError as e:  # a 200 whose body is not JSON (json.JSONDecodeError)
            raise MalformedReply(f"{where} sent a reply that is not valid JSON ({_short(e)})") from None
        except openai.APIStatusError as e:
            status = e.status_code
            detail = _short(_error_message(e))
            if status in _TRANSIENT_STATUS or status >= 500:
                retry_after = parse_retry_after(dict(e.response.headers))
                raise TransientLLMError(f"HTTP {status} from {where}: {detail}", retry_after) from None
            if status in (400, 422) and self._adapt(detail, kwargs):
                raise RequestAdapted(f"adapted the request to the server ({detail})") from None
            if use_schema and self.structured_mode == "auto" and status in (400, 422):
                # The server does not do JSON-schema output: plain lists from now on.
                if self._structured:
                    log.warning("%s rejected structured (JSON schema) output (HTTP %s: %s); "
                                "asking for plain lists instead", where, status, detail)
                self._structured = False
                raise RequestAdapted("structured output not supported; asking for a plain list") from None
            if use_schema and status in (400, 422) and any(w in detail.lower() for w in
                                                           ("response_format", "json_schema", "schema")):
                raise FatalLLMError(f"{where} does not accept structured (JSON schema) output "
                                    f"({detail}); use --structured auto or off") from None
            if status in (401, 403):
                name = self.api_key_env or "OPENAI_API_KEY"
                raise FatalLLMError(f"{where} refused the request (HTTP {status}): check the key in "
                                    f"${name} and its permissions ({detail})") from None
            if status == 404:
                raise FatalLLMError(f"{where} answered HTTP 404 for model {self.model!r}: is the model "
                                    f"name right and is the base URL the /v1 root? ({detail})") from None
            raise LLMError(f"HTTP {status} from {where}: {detail}") from None
        except openai.OpenAIError as e:
            raise LLMError(f"{where}: {_short(e)}") from None

        choices = getattr(response, "choices", None) or []
        text = ""
        truncated = False
        if choices:
            message = getattr(choices[0], "message", None)
            text = (getattr(message, "content", None) or "") if message is not None else ""
            truncated = getattr(choices[0], "finish_reason", None) == "length"
        usage = getattr(response, "usage", None)
        return ChatResult(
            text=text,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0) if usage else 0,
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0) if usage else 0,
            structured=use_schema,
            truncated=truncated,
        )


    def _adapt(self, detail: str, sent: dict[str, Any]) -> bool:
        """Stop sending a parameter the server refused; True if the refused request had it (also
        when a concurrent request already switched it off)."""
        low = detail.lower()
        if "max_tokens" in sent and "max_tokens" in low and "max_completion_tokens" in low:
            self._length_param = "max_completion_tokens"
            return True
        if "temperature" in sent and "temperature" in low:
            if self._send_temperature:
                log.warning("%s does not accept a temperature; using the model's default", self.identity)
            self._send_temperature = False
            return True
        return False


def _is_refusal(cause: BaseException) -> bool:
    """Whether a connection error means nothing listens there (refused, unknown host, no route),
    as opposed to a connection that was dropped mid-answer."""
    import socket

    seen: set[int] = set()
    e: BaseException | None = cause
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, (ConnectionRefusedError, socket.gaierror)):
            return True
        if isinstance(e, OSError) and e.errno in (111, 113, 101, 99):  # refused, no route, unreachable
            return True
        text = str(e).lower()
        if "connection refused" in text or "name or service not known" in text \
                or "nodename nor servname" in text:
            return True
        e = e.__cause__ or e.__context__
    return False


def is_local_url(url: str | None) -> bool:
    """Whether ``url`` points at this machine (local servers rarely check keys)."""
    host = urlsplit(url).hostname if url else None
    return host in ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def _error_message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return str(getattr(e, "message", e))


def _short(obj: Any, limit: int = 200) -> str:
    s = " ".join(str(obj).split())
    return s if len(s) <= limit else s[: limit - 1] + "…"
