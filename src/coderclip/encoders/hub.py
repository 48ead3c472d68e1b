"""Fast, bounded checks for "can the model hub be reached?" so that a missing model fails in
seconds with a clear message instead of retrying downloads for a minute."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co")


def offline_requested() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "CODERCLIP_OFFLINE"))


@functools.lru_cache(maxsize=16)
def host_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True if a TCP connection to the URL's host can be opened within ``timeout`` seconds.

    Name resolution can block far longer than a socket timeout, so the probe runs in a daemon
    thread that is abandoned when the time is up.
    """
    if offline_requested():
        return False
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def hub_reachable() -> bool:
    return host_reachable(hub_endpoint())


@contextlib.contextmanager
def hub_offline_mode(enabled: bool) -> Iterator[None]:
    """Temporarily put huggingface_hub in offline mode (cache only, no HTTP requests)."""
    if not enabled:
        yield
        return
    from huggingface_hub import constants

    old = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = old
