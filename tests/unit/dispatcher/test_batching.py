from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager, suppress

import pytest

from hub_common.errors import DatabaseUnavailableError, InfrastructureError
from hub_dispatcher.batching import Coalescer, CoalescerStoppedError


class Recorder:
    """A flush that records its batches, doubles each item, and fails while `failures` is positive."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.failures = 0
        self.gate: asyncio.Event | None = None
        self.writing = asyncio.Event()

    async def flush(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.writing.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise DatabaseUnavailableError("db down")
        return [i * 2 for i in items]


@asynccontextmanager
async def running(coalescer: Coalescer[int, int]) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(coalescer.run())
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def test_concurrent_requests_become_one_write_and_each_caller_gets_its_own_result() -> None:
    recorder = Recorder()
    coalescer = Coalescer("t", recorder.flush, max_batch=100)
    async with running(coalescer):
        results = await asyncio.gather(*(coalescer.submit(i) for i in range(10)))

    assert results == [i * 2 for i in range(10)]
    assert recorder.batches == [list(range(10))]


async def test_requests_arriving_during_a_write_go_into_the_next_one_and_batches_are_capped() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    coalescer = Coalescer("t", recorder.flush, max_batch=3)
    async with running(coalescer):
        first = asyncio.ensure_future(coalescer.submit(0))
        await recorder.writing.wait()
        later = [asyncio.ensure_future(coalescer.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0)
        recorder.gate.set()
        results = await asyncio.gather(first, *later)

    assert results == [0, 2, 4, 6, 8, 10]
    assert recorder.batches == [[0], [1, 2, 3], [4, 5]]


async def test_a_failed_write_fails_every_caller_of_that_batch_and_the_next_batch_works() -> None:
    recorder = Recorder()
    recorder.failures = 1
    coalescer = Coalescer("t", recorder.flush, max_batch=100)
    async with running(coalescer):
        failed = await asyncio.gather(*(coalescer.submit(i) for i in range(3)), return_exceptions=True)
        again = await coalescer.submit(7)

    assert all(isinstance(r, DatabaseUnavailableError) for r in failed)
    assert again == 14


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    coalescer = Coalescer("t", recorder.flush, max_batch=100)
    async with running(coalescer):
        gone = asyncio.ensure_future(coalescer.submit(1))
        kept = asyncio.ensure_future(coalescer.submit(2))
        await recorder.writing.wait()
        gone.cancel()
        recorder.gate.set()
        assert await kept == 4

    assert gone.cancelled()
    # Written anyway: the effect of a cancelled caller's item is still true (see the module docstring).
    assert recorder.batches == [[1, 2]]


async def test_stopping_fails_queued_and_later_callers_with_a_retryable_error() -> None:
    recorder = Recorder()
    recorder.gate = asyncio.Event()
    coalescer = Coalescer("t", recorder.flush, max_batch=1)
    async with running(coalescer) as task:
        in_write = asyncio.ensure_future(coalescer.submit(1))
        queued = asyncio.ensure_future(coalescer.submit(2))
        await recorder.writing.wait()
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    for caller in (in_write, queued):
        with pytest.raises(CoalescerStoppedError):
            await caller
    with pytest.raises(CoalescerStoppedError):
        await coalescer.submit(3)
    assert issubclass(CoalescerStoppedError, InfrastructureError)
