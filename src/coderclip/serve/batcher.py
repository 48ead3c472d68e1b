"""Micro-batching: requests that arrive within a short window go to the encoder together.

Every coroutine runs on the server's event loop, so the queue needs no lock; the model runs in one
worker thread (one batch at a time), so the loop stays free to accept and decode requests. The
queue is bounded in images: a request that would overflow it is refused at once
(:class:`QueueFull`, answered 503 with Retry-After), never left waiting.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import time
from collections.abc import Callable
from typing import Any


class QueueFull(Exception):
    """The batching queue holds its limit of images; the caller should retry later."""


@dataclasses.dataclass
class Job:
    """One request's images (``payload``: any sized batch, e.g. pixels ``[n, 3, H, W]``) and options."""

    payload: Any
    size: int
    options: dict
    future: asyncio.Future


class MicroBatcher:
    """Collects jobs for up to ``window_s`` after the first arrives (or until ``max_batch`` images
    are queued) and runs ``run_batch(jobs) -> results`` (one result per job) in a worker thread.

    A job larger than ``max_batch`` runs alone; jobs are never split or reordered.
    """

    def __init__(self, run_batch: Callable[[list[Job]], list[Any]], max_batch: int = 32,
                 window_s: float = 0.005, max_queued: int = 256):
        if max_batch < 1 or max_queued < 1 or window_s < 0:
            raise ValueError("max_batch and max_queued must be >= 1 and window_s >= 0")
        self.run_batch = run_batch
        self.max_batch, self.window_s, self.max_queued = max_batch, window_s, max_queued
        self._queue: collections.deque[Job] = collections.deque()
        self._queued = 0
        self._busy = 0
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        #: images per batch run -> number of batches
        self.batch_sizes: collections.Counter[int] = collections.Counter()
        self.rejected = 0
        self.served = 0

    @property
    def queued(self) -> int:
        """Images waiting or being encoded."""
        return self._queued + self._busy

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="coderclip-model")
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def submit(self, payload: Any, size: int, **options) -> Any:
        """Queue one request's ``size`` images and wait for its result."""
        if self._task is None or self._task.done():
            raise RuntimeError("the batcher is not running")
        if self._queued + self._busy + size > self.max_queued:
            self.rejected += 1
            raise QueueFull(f"{self.queued} images queued (limit {self.max_queued})")
        fut = asyncio.get_running_loop().create_future()
        self._queue.append(Job(payload, size, options, fut))
        self._queued += size
        self._arrived.set()
        return await fut

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            deadline = time.monotonic() + self.window_s
            while self._queued < self.max_batch:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), left)
                except asyncio.TimeoutError:
                    break
            jobs, n = [self._queue.popleft()], 0
            n = jobs[0].size
            while self._queue and n + self._queue[0].size <= self.max_batch:
                job = self._queue.popleft()
                jobs.append(job)
                n += job.size
            self._queued -= n
            self._busy = n
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, jobs)
                err = None
            except Exception as e:  # noqa: BLE001 - handed to every waiting request
                results, err = [None] * len(jobs), e
            finally:
                self._busy = 0
            self.batch_sizes[n] += 1
            for job, res in zip(jobs, results):
                if job.future.done():      # the client went away
                    continue
                if err is not None:
                    job.future.set_exception(err)
                else:
                    job.future.set_result(res)
                    self.served += 1

    async def stop(self) -> None:
        """Finish every queued job, then stop the loop and the worker thread."""
        while self._queue or self._busy:
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._executor is not None:
            self._executor.shutdown(wait=True)
