"""Shared test tools for the ATG: a scripted chat-completions server on localhost, a deterministic
fake text encoder, and a private WordNet cache."""

from __future__ import annotations

import collections
import json
import re
import socket
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from coderclip.encoders.base import Encoder


# ---------------------------------------------------------------------- scripted chat server

_QUOTED = re.compile(r'"([^"]+)"')


def request_kind(user: str) -> str:
    """Which of our prompts a user message is (the server answers by kind, like a real model)."""
    if "visual differences" in user:
        return "contrasts"
    if "look similar" in user:
        return "analogous"
    if "other names" in user:
        return "synonyms"
    return "attributes"


def pair_names(user: str) -> tuple[str, str]:
    """The two raw class names of a contrast question (from its answer-format instructions)."""
    m = re.search(r'features of "(.+?)", "second" those of "(.+?)"', user)
    if m:
        return m.group(1), m.group(2)
    lines = user.splitlines()
    heads = [ln[:-1] for ln in lines if ln.endswith(":") and not ln.startswith(("-", "Answer"))]
    return heads[-2], heads[-1]


def default_answer(body: dict) -> str:
    """A deterministic, well-formed answer derived from the question alone."""
    user = body["messages"][-1]["content"]
    structured = "response_format" in body
    kind = request_kind(user)
    subject = re.sub(r"^(a|an|the) ", "", _QUOTED.findall(user)[0].split(",")[0])  # the class name
    if kind == "contrasts":
        a, b = pair_names(user)
        first = [f"{a} mark {k}" for k in (1, 2, 3)]
        second = [f"{b} mark {k}" for k in (1, 2, 3)]
        if structured:
            return json.dumps({"first": first, "second": second})
        return "\n".join([f"Here are the differences:", f"**{a}:**", *[f"- {f}" for f in first],
                          f"**{b}:**", *[f"- {f}" for f in second]])
    if kind == "analogous":
        items = [f"{subject} twin {k}" for k in (1, 2, 3, 4, 5)]
    elif kind == "synonyms":
        items = [f"{subject} alias"]
    else:
        items = [f"{subject} trait {k}" for k in range(1, 9)]
    if structured:
        return json.dumps({"items": items})
    return "Sure! Here is the list:\n" + "\n".join(f"{k}. **{it}**" for k, it in enumerate(items, 1))


class ChatServer:
    """A real HTTP server speaking the chat-completions protocol, with scriptable faults.

    ``script(action, match=...)`` queues an action for the next request whose user message contains
    ``match`` (any request if ``None``). Actions: ``("reply", text[, finish_reason])`` (``"length"``
    says the answer was cut at the token limit), ``("status", code, headers[, message])``,
    ``("slow", seconds)`` (then a normal answer), ``("drop",)`` (close without answering),
    ``("die",)`` (stop listening; the request is dropped), ``("raw", code, body_bytes)`` (any body,
    e.g. malformed JSON, with that status). Unscripted requests get
    :func:`default_answer`, or ``answer(body)`` if given.
    """

    def __init__(self, answer=default_answer, delay: float = 0.0, reject_structured: bool = False):
        self.answer = answer
        self.delay = delay
        self.reject_structured = reject_structured
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self._script: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self.port = _free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *action, match: str | None = None) -> None:
        with self._lock:
            self._script.append((match, action))

    def _next_action(self, user: str):
        with self._lock:
            for k, (match, action) in enumerate(self._script):
                if match is None or match in user:
                    del self._script[k]
                    return action
        return None

    def start(self) -> ChatServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                action = None
                with server._lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                user = body["messages"][-1]["content"]
                if server._httpd is None:  # dead: also refuse kept-alive connections
                    action = ("drop",)
                if server.delay:
                    time.sleep(server.delay() if callable(server.delay) else server.delay)
                if server._httpd is not None:
                    action = server._next_action(user)
                if action and action[0] == "die":
                    threading.Thread(target=server.stop, daemon=True).start()
                    action = ("drop",)
                if action and action[0] == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action and action[0] == "raw":
                    self._send_raw(action[1], action[2])
                    return
                if action and action[0] == "status":
                    code, headers = action[1], (action[2] if len(action) > 2 else {})
                    message = action[3] if len(action) > 3 else f"scripted {code}"
                    self._send(code, {"error": {"message": message, "type": "test"}}, headers)
                    return
                if server.reject_structured and "response_format" in body:
                    self._send(400, {"error": {"message": "response_format is not supported"}})
                    return
                if action and action[0] == "slow":
                    time.sleep(action[1])
                text = action[1] if action and action[0] == "reply" else server.answer(body)
                finish = action[2] if action and action[0] == "reply" and len(action) > 2 else "stop"
                self._send(200, {
                    "id": "chatcmpl-test", "object": "chat.completion", "created": 0,
                    "model": body.get("model", "test"),
                    "choices": [{"index": 0, "finish_reason": finish,
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": len(user.split()), "completion_tokens": len(text.split()),
                              "total_tokens": len(user.split()) + len(text.split())},
                })

            def _send(self, code, payload, headers=None):
                self._send_raw(code, json.dumps(payload).encode(), headers)

            def _send_raw(self, code, data, headers=None):
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        httpd = _QuietServer(("127.0.0.1", self.port), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def kinds(self) -> list[str]:
        return [request_kind(b["messages"][-1]["content"]) for b in self.requests]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # clients killed mid-request (resume tests) reset their connections: expected


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def chat_server():
    """Factory: ``chat_server(**options)`` starts a :class:`ChatServer`; all are stopped afterwards."""
    servers = []

    def make(**kw) -> ChatServer:
        s = ChatServer(**kw).start()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


# ---------------------------------------------------------------------- fake encoder

#: Words that carry (almost) no meaning in the fake embedding space.
_STOP = {"a", "an", "the", "of", "photo", "type", "which", "has", "is", "in", "and", "or", "to",
         "with", "that", "kind", "its", "for", "on", "by"}


class KeywordEncoder(Encoder):
    """Deterministic text encoder for tests: a text is the sum of one fixed random vector per
    word (stop words weigh 0.05); ``aliases`` map words onto the same vector ("burger" ->
    "hamburger"), which makes texts that use them near-identical."""

    def __init__(self, aliases: dict[str, str] | None = None, dim: int = 256):
        self.aliases = {k.casefold(): v.casefold() for k, v in (aliases or {}).items()}
        self.name = "keyword-test-encoder"
        self.identity = "keyword-test-encoder:" + json.dumps(sorted(self.aliases.items()))
        self.embed_dim = dim
        self.device = torch.device("cpu")
        self.dtype = torch.float32
        self.preprocess = None
        self.texts_seen: list[str] = []

    def _vector(self, word: str) -> torch.Tensor:
        g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
        return torch.randn(self.embed_dim, generator=g)

    def _encode_text_batch(self, texts):
        self.texts_seen.extend(texts)
        out = torch.zeros(len(texts), self.embed_dim)
        for i, t in enumerate(texts):
            for w in re.findall(r"[a-z0-9'-]+", t.casefold()):
                w = self.aliases.get(w, w)
                out[i] += (0.05 if w in _STOP else 1.0) * self._vector(w)
        return out

    def _encode_image_batch(self, pixels):
        raise NotImplementedError("text-only test encoder")


@pytest.fixture
def keyword_encoder():
    return KeywordEncoder


# ---------------------------------------------------------------------- WordNet cache


@pytest.fixture(scope="session")
def wordnet_cache(tmp_path_factory):
    """A private coderclip cache with the WordNet copy (made once per test session)."""
    from coderclip.atg import wordnet

    root = tmp_path_factory.mktemp("coderclip-cache") / "nltk_data"
    wordnet.ensure_wordnet_data(root)
    reader = wordnet.wordnet_reader(root)
    return reader
