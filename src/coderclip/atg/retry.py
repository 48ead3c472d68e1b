"""Waiting between attempts: exponential backoff with jitter, and the server's ``Retry-After``."""

from __future__ import annotations

import dataclasses
import email.utils
import random
import time
from collections.abc import Mapping


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one request.

    Attempt ``k`` (0-based) that failed transiently waits ``base_delay * 2**k`` seconds (±25 %
    jitter, at most ``max_delay``), or what the server asked for in ``Retry-After`` if that is
    longer, but never more than ``max_wait``.
    """

    max_retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_wait: float = 300.0

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (0-based)."""
        backoff = min(self.max_delay, self.base_delay * (2 ** attempt))
        backoff *= 1.0 + 0.25 * (2 * (rng or random).random() - 1)
        if retry_after is not None:
            backoff = max(backoff, retry_after)
        return max(0.0, min(backoff, self.max_wait))


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if not headers:
        return None
    lower = {k.lower(): v for k, v in headers.items()}
    ms = lower.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = lower.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
