"""Group commit: many concurrent single-row requests become one multi-row statement.

Deliveries run as independent tasks, each wanting its own tiny write (create/claim a row, mark it delivered).
One round trip per write costs more CPU than the HTTP call itself (pool acquire, query, the pool's RESET on
release), so each kind of write goes through a `Coalescer`: callers `submit` an item and wait; one task takes
everything queued so far, runs one statement for all of it, and wakes each caller with its own result or
with the statement's error. While a statement runs, new items queue up for the next one, so batches grow
with load and a lone request waits only for its own round trip.

A caller's `submit` returns only after the statement committed: callers that commit Kafka offsets after
their write keep that ordering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from hub_common.errors import InfrastructureError

T = TypeVar("T")
R = TypeVar("R")

Flush = Callable[[Sequence[T]], Awaitable[Sequence[R]]]


class CoalescerStoppedError(InfrastructureError):
    """The coalescer's flushing task ended (shutdown) before this request was written."""


class Coalescer(Generic[T, R]):
    def __init__(self, name: str, flush: Flush[T, R], *, max_batch: int) -> None:
        self.name = name
        self._flush = flush
        self._max_batch = max_batch
        self._queued: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._stopped = False

    async def submit(self, item: T) -> R:
        """Queue `item`; return its result once the batch holding it has been written."""
        if self._stopped:
            raise CoalescerStoppedError(f"{self.name}: stopped")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        self._wake.set()
        return await future

    async def run(self) -> None:
        """The flushing loop, for the app's lifetime; cancel it to stop (queued callers are failed)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queued:
                    batch = self._queued[: self._max_batch]
                    del self._queued[: self._max_batch]
                    await self._write(batch)
        finally:
            self._stopped = True
            stopped = CoalescerStoppedError(f"{self.name}: stopped")
            for _, future in self._queued:
                if not future.done():
                    future.set_exception(stopped)
            self._queued.clear()

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        # A cancelled caller's item is written anyway: its effect (a claim, a delivered mark) is still true,
        # and leaving it out would need the same repair as a crash.
        try:
            results = await self._flush([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                if not future.done():
                    future.set_exception(CoalescerStoppedError(f"{self.name}: stopped mid-write"))
            raise
        except Exception as exc:  # handed to every caller, who knows what it means for it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
