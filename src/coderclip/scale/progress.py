"""Progress of a job across a cluster: images per second, shards done out of total, an ETA."""

from __future__ import annotations

import sys
import time


class Progress:
    """Images per second, shards done out of total and an ETA, printed every ``interval`` s."""

    def __init__(self, total_shards: int, enabled: bool = True, interval: float = 5.0, stream=None):
        self.total, self.enabled, self.interval = total_shards, enabled, interval
        self.stream = stream or sys.stderr
        self.start = self.last = time.perf_counter()
        self.images = self.shards = 0
        self.first_result: float | None = None   # seconds until the first rows came back

    def update(self, images: int = 0, shards: int = 0) -> None:
        if self.first_result is None and (images or shards):
            self.first_result = time.perf_counter() - self.start
        self.images += images
        self.shards += shards
        now = time.perf_counter()
        if self.enabled and (now - self.last >= self.interval or (shards and self.shards == self.total)):
            self.last = now
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        eta = (elapsed / self.shards * (self.total - self.shards)) if self.shards else float("nan")
        return (f"{self.shards}/{self.total} shards, {self.images} images, "
                f"{self.images / elapsed:.1f} images/s, ETA {_duration(eta)}")


def _duration(s: float) -> str:
    if s != s:
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
