"""``coderclip serve``: CODER classification over HTTP, with a web page at ``/``.

:func:`build_app` loads the model and text banks once and returns the ASGI app; :func:`run` serves
it with uvicorn. With ``workers > 1`` each worker process loads its own copy of the model (the
settings travel to the workers in an environment variable; the API key stays in its own).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import logging
import os

from ..defaults import SERVED_METHODS
from ..errors import ConfigError

SETTINGS_ENV = "CODERCLIP_SERVE_SETTINGS"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@dataclasses.dataclass
class ServeSettings:
    """Everything ``coderclip serve`` needs (JSON-serialisable, for worker processes)."""

    model: str
    knowledge: str | None = None
    classes: str | None = None
    domain: str | None = None
    methods: tuple[str, ...] = SERVED_METHODS
    method: str = "coder-rerank"
    rerank_k: int | None = None
    tau: float | None = None
    device: str | None = None
    precision: str | None = None
    cache: bool = True
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_batch: int = 32
    batch_window_ms: float = 5.0
    max_queued: int = 256
    max_upload_mb: float = 20.0
    max_images: int = 16
    max_pixels: int = 40_000_000
    graceful_timeout_s: int = 30


def is_local(host: str) -> bool:
    """Whether ``host`` is a loopback address (only this machine can connect)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_key_from_env(host: str) -> str | None:
    """The API key from ``CODERCLIP_API_KEY``; required unless ``host`` is local."""
    from .app import API_KEY_ENV

    key = os.environ.get(API_KEY_ENV) or None
    if key is None and not is_local(host):
        raise ConfigError(f"binding to {host} lets other machines connect: set an API key in the "
                          f"environment variable {API_KEY_ENV} (clients send it as "
                          "'Authorization: Bearer KEY'), or bind to 127.0.0.1")
    if key is not None and len(key) < 16:
        raise ConfigError(f"the API key in {API_KEY_ENV} is {len(key)} characters long; use at "
                          "least 16 random characters (e.g. python -c 'import secrets; "
                          "print(secrets.token_urlsafe(32))')")
    return key


def build_app(settings: ServeSettings):
    """Load the model and knowledge, build every served method's text bank, return the app."""
    import argparse

    from ..cli._common import load_knowledge_from_args
    from ..encoders import load_encoder
    from .app import create_app
    from .service import ClassifierService, Limits

    key = api_key_from_env(settings.host)
    encoder = load_encoder(settings.model, device=settings.device, precision=settings.precision)
    knowledge = load_knowledge_from_args(argparse.Namespace(
        knowledge=settings.knowledge, classes=settings.classes, domain=settings.domain))
    limits = Limits(max_body_bytes=int(settings.max_upload_mb * 1024 * 1024),
                    max_images=settings.max_images, max_pixels=settings.max_pixels)
    service = ClassifierService(encoder, knowledge, methods=settings.methods,
                                default_method=settings.method, rerank_k=settings.rerank_k,
                                tau=settings.tau, cache=settings.cache, limits=limits)
    return create_app(service, api_key=key, max_batch=settings.max_batch,
                      batch_window_ms=settings.batch_window_ms, max_queued=settings.max_queued)


def app_from_env():
    """uvicorn factory for worker processes: the settings come from ``CODERCLIP_SERVE_SETTINGS``."""
    configure_logging()
    raw = json.loads(os.environ[SETTINGS_ENV])
    raw["methods"] = tuple(raw["methods"])
    return build_app(ServeSettings(**raw))


def configure_logging(verbose: bool = False) -> None:
    """Access log as JSON lines on stderr (``coderclip.serve.access``), other messages plain."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    access = logging.getLogger("coderclip.serve.access")
    access.handlers[:] = [handler]
    access.setLevel(logging.INFO)
    access.propagate = False


def run(settings: ServeSettings) -> None:
    """Serve until SIGINT/SIGTERM; on either, stop accepting, finish in-flight requests (up to
    ``graceful_timeout_s``), then exit."""
    import uvicorn

    api_key_from_env(settings.host)          # refuse a non-local bind without a key before loading
    common = dict(host=settings.host, port=settings.port, access_log=False, log_level="info",
                  timeout_graceful_shutdown=settings.graceful_timeout_s, server_header=False)
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
        uvicorn.run("coderclip.serve:app_from_env", factory=True, workers=settings.workers, **common)
    else:
        uvicorn.run(build_app(settings), **common)
