"""The micro-batcher: concurrent requests share one model call, jobs are never split or mixed up,
a full queue refuses at once, and stopping finishes queued work. Synchronised on events, not time."""

from __future__ import annotations

import asyncio
import threading

import pytest

from coderclip.serve.batcher import MicroBatcher, QueueFull


def _echo(jobs):
    """One result per job: its payload, and the sizes of the batch it rode in."""
    return [(job.payload, [j.size for j in jobs]) for job in jobs]


def test_concurrent_requests_form_one_batch():
    async def main():
        b = MicroBatcher(_echo, max_batch=6, window_s=60.0, max_queued=100)
        await b.start()
        # six images queued before the loop runs: the batch is full, no window wait
        results = await asyncio.gather(*(b.submit(f"r{i}", size) for i, size in enumerate([1, 2, 3])))
        await b.stop()
        return b, results

    b, results = asyncio.run(main())
    assert [r[0] for r in results] == ["r0", "r1", "r2"]
    assert all(r[1] == [1, 2, 3] for r in results)
    assert dict(b.batch_sizes) == {6: 1} and b.served == 3


def test_batches_respect_max_batch_and_order():
    async def main():
        b = MicroBatcher(_echo, max_batch=4, window_s=0.0, max_queued=100)
        await b.start()
        results = await asyncio.gather(*(b.submit(i, 3) for i in range(4)))
        big = await b.submit("big", 9)               # larger than max_batch: runs alone
        await b.stop()
        return b, results, big

    b, results, big = asyncio.run(main())
    assert [r[0] for r in results] == [0, 1, 2, 3]
    assert all(r[1] == [3] for r in results), "3 + 3 > 4: one job per batch"
    assert big == ("big", [9]) and b.batch_sizes[9] == 1


def test_full_queue_refuses_at_once_and_stop_drains():
    release = threading.Event()
    started = threading.Event()

    def slow(jobs):
        started.set()
        release.wait(30)
        return _echo(jobs)

    async def main():
        b = MicroBatcher(slow, max_batch=2, window_s=0.0, max_queued=3)
        await b.start()
        first = asyncio.ensure_future(b.submit("a", 2))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 30)
        assert b.queued == 2
        queued = asyncio.ensure_future(b.submit("b", 1))   # fits: 2 in flight + 1 <= 3
        await asyncio.sleep(0)
        with pytest.raises(QueueFull):
            await b.submit("c", 1)                          # 4 > 3: refused, not left waiting
        release.set()
        stop = asyncio.ensure_future(b.stop())             # finishes "a" and "b" first
        results = await asyncio.gather(first, queued)
        await stop
        return b, results

    b, results = asyncio.run(main())
    assert [r[0] for r in results] == ["a", "b"] and b.rejected == 1 and b.served == 2


def test_a_failing_batch_fails_its_requests_only():
    calls = []

    def flaky(jobs):
        calls.append(len(jobs))
        if len(calls) == 1:
            raise RuntimeError("model failed")
        return _echo(jobs)

    async def main():
        b = MicroBatcher(flaky, max_batch=1, window_s=0.0, max_queued=10)
        await b.start()
        with pytest.raises(RuntimeError, match="model failed"):
            await b.submit("x", 1)
        ok = await b.submit("y", 1)
        await b.stop()
        return ok

    assert asyncio.run(main())[0] == "y"
