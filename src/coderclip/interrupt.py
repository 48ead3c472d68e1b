"""Ctrl-C that finishes the current batch: long loops ask :func:`stop_requested` between batches.

Inside :func:`finish_batch_on_interrupt`, the first SIGINT only sets a flag (the loop finishes the
batch in hand, saves it and raises :class:`~coderclip.errors.Interrupted` saying what was kept);
a second SIGINT stops at once with :class:`KeyboardInterrupt`. Outside it, or off the main
thread, SIGINT behaves as usual.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator

_requested = threading.Event()


def stop_requested() -> bool:
    """Whether the user asked to stop after the current batch."""
    return _requested.is_set()


@contextlib.contextmanager
def finish_batch_on_interrupt(what: str = "the current batch") -> Iterator[None]:
    """Within this block, the first Ctrl-C asks loops to stop after ``what``."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield  # someone else (a test harness, an outer block) handles SIGINT: leave it alone
        return

    def handler(signum, frame):  # noqa: ARG001
        if _requested.is_set():
            raise KeyboardInterrupt
        _requested.set()
        print(f"\ninterrupt: finishing {what} and saving it (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)

    _requested.clear()
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()
