"""Group commit: database steps of many transactions (different players) in one database transaction.

Every step costs a few round trips whatever its size (BEGIN, lock, write, COMMIT), and round trips are what the
ledger spends its time on. Calls that arrive while `max_in_flight` batches run wait and go together in the
next batch: no timer, so a lone call is not delayed, and batches grow with the load.

A batch that fails is retried one item at a time before anyone sees an error, so one bad item (a poison
command, a constraint it breaks) fails only its own caller. Errors about the infrastructure (`shared_errors`:
the database unreachable, a deadlock) say nothing about any one item: every caller gets them at once and
retries on its own schedule, instead of the batch trying each item against a database that is down.

Two items with the same key never share a batch: the later one waits for the next, so each batch touches one
row at most once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import Histogram

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - item
O = TypeVar("O")  # noqa: E741 - outcome

BATCH_SIZE = Histogram(
    "hub_ledger_db_batch_size", "Items per grouped database step", ["step"], buckets=(1, 2, 5, 10, 20, 50, 100, 200)
)


@dataclass
class _Call(Generic[I, O]):
    item: I
    future: asyncio.Future[O]


class Batcher(Generic[I, O]):
    """`await batcher.submit(item)` -> the outcome `run` gave for it; `close()` on shutdown.

    `run(items)` returns one outcome per item, in order, or raises for the whole batch.
    """

    def __init__(
        self,
        name: str,
        run: Callable[[Sequence[I]], Awaitable[Sequence[O]]],
        *,
        key: Callable[[I], Hashable],
        max_batch: int,
        max_in_flight: int,
        shared_errors: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._name = name
        self._shared_errors = shared_errors
        self._run = run
        self._key = key
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[_Call[I, O]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: I) -> O:
        call: _Call[I, O] = _Call(item, asyncio.get_running_loop().create_future())
        self._queue.append(call)
        self._start()
        return await call.future

    async def close(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        for call in self._queue:
            call.future.cancel()
        self._queue.clear()

    def _start(self) -> None:
        while self._queue and len(self._tasks) < self._max_in_flight:
            batch = self._take()
            if not batch:
                return
            task = asyncio.create_task(self._execute(batch), name=f"batch:{self._name}")
            self._tasks.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            self._start()

    def _take(self) -> list[_Call[I, O]]:
        batch: list[_Call[I, O]] = []
        keys: set[Hashable] = set()
        later: list[_Call[I, O]] = []
        while self._queue and len(batch) < self._max_batch:
            call = self._queue.popleft()
            if call.future.done():  # its caller gave up (cancelled)
                continue
            key = self._key(call.item)
            if key in keys:
                later.append(call)
                continue
            keys.add(key)
            batch.append(call)
        self._queue.extendleft(reversed(later))
        return batch

    async def _execute(self, batch: list[_Call[I, O]]) -> None:
        BATCH_SIZE.labels(self._name).observe(len(batch))
        try:
            outcomes = await self._run([c.item for c in batch])
        except asyncio.CancelledError:
            for call in batch:
                call.future.cancel()
            raise
        except Exception as exc:
            if len(batch) == 1 or isinstance(exc, self._shared_errors):
                for call in batch:
                    _settle_error(call, exc)
                return
            log.info(
                "grouped step failed; retrying its items one by one", extra={"step": self._name, "error": repr(exc)}
            )
            for call in batch:
                await self._execute([call])
            return
        for call, outcome in zip(batch, outcomes, strict=True):
            if not call.future.done():
                call.future.set_result(outcome)


def _settle_error(call: _Call[I, O], exc: Exception) -> None:
    if not call.future.done():
        call.future.set_exception(exc)
