"""Group commit: concurrent callers' single-item writes become one database step per batch.

A step costs a few round trips whatever its size (pool acquire, BEGIN, the statement, COMMIT), and round trips
are what the services spend their time on. Callers `submit` an item and wait; a batch takes everything queued
when it starts (up to `max_batch`), and calls that arrive while `max_in_flight` batches run wait for the next
one: no timer, so a lone call is not delayed, and batches grow with the load. `submit` returns only after the
step committed, so a caller that commits Kafka offsets after its write keeps that order.

The services differ in what a failure means, so that is an explicit choice:

- `on_failure=SHARE`: every caller of the failed batch gets the error and knows what it means for it.
- `on_failure=SPLIT`: the batch is retried one item at a time before anyone sees an error, so one bad item (a
  poison command, a constraint it breaks) fails only its own caller. Errors in `shared_errors` (the database
  unreachable, a deadlock) say nothing about any one item: every caller gets them at once.

and so is what happens to the item of a caller that gave up (cancelled) before its batch started:
`write_abandoned=True` writes it anyway (its effect is still true, and leaving it out would need the same repair
as a crash); False leaves it out.

With `key`, two items with the same key never share a batch (the later one waits for the next), so a batch
touches one row at most once. After `close()` (shutdown) queued and later callers get `GroupCommitClosedError`.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, TypeVar

from hub_common.errors import InfrastructureError

log = logging.getLogger(__name__)

I = TypeVar("I")  # noqa: E741 - item
O = TypeVar("O")  # noqa: E741 - outcome

Run = Callable[[Sequence[I]], Awaitable[Sequence[O]]]


class OnFailure(enum.Enum):
    SHARE = "share"
    SPLIT = "split"


class GroupCommitClosedError(InfrastructureError):
    """The group commit was closed (shutdown) before this item was written."""


@dataclass
class _Call(Generic[I, O]):
    item: I
    future: asyncio.Future[O]


class GroupCommit(Generic[I, O]):
    """`await group.submit(item)` -> the outcome `run` gave for it; `await group.close()` on shutdown.

    `run(items)` returns one outcome per item, in order, or raises for the whole batch.
    """

    def __init__(
        self,
        name: str,
        run: Run[I, O],
        *,
        max_batch: int,
        max_in_flight: int = 1,
        on_failure: OnFailure = OnFailure.SHARE,
        shared_errors: tuple[type[BaseException], ...] = (),
        write_abandoned: bool = False,
        key: Callable[[I], Hashable] | None = None,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_in_flight < 1:
            raise ValueError("max_batch and max_in_flight must be at least 1")
        self.name = name
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._on_failure = on_failure
        self._shared_errors = shared_errors
        self._write_abandoned = write_abandoned
        self._key = key
        self._observe = observe
        self._queue: deque[_Call[I, O]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        # A batch task that was created but has not taken its items yet: it takes everything queued by the time
        # it runs, so no second one is needed until it has.
        self._starting = False
        self._closed = False

    async def submit(self, item: I) -> O:
        if self._closed:
            raise GroupCommitClosedError(f"{self.name}: closed")
        call: _Call[I, O] = _Call(item, asyncio.get_running_loop().create_future())
        self._queue.append(call)
        self._start()
        return await call.future

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        for call in self._queue:
            self._fail(call, GroupCommitClosedError(f"{self.name}: closed"))
        self._queue.clear()

    def _start(self) -> None:
        if self._starting or not self._queue or len(self._tasks) >= self._max_in_flight:
            return
        self._starting = True
        task = asyncio.create_task(self._batch(), name=f"batch:{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not self._closed:
            self._start()

    async def _batch(self) -> None:
        self._starting = False
        batch = self._take()
        self._start()  # more queued than one batch holds, and a free slot: run it beside this one
        if batch:
            await self._execute(batch)

    def _take(self) -> list[_Call[I, O]]:
        batch: list[_Call[I, O]] = []
        keys: set[Hashable] = set()
        later: list[_Call[I, O]] = []
        while self._queue and len(batch) < self._max_batch:
            call = self._queue.popleft()
            if call.future.done() and not self._write_abandoned:
                continue
            if self._key is not None:
                key = self._key(call.item)
                if key in keys:
                    later.append(call)
                    continue
                keys.add(key)
            batch.append(call)
        self._queue.extendleft(reversed(later))
        return batch

    async def _execute(self, batch: list[_Call[I, O]]) -> None:
        if self._observe is not None:
            self._observe(len(batch))
        try:
            outcomes = await self._run([call.item for call in batch])
        except asyncio.CancelledError:
            for call in batch:
                self._fail(call, GroupCommitClosedError(f"{self.name}: closed mid-write"))
            raise
        except Exception as exc:
            if self._on_failure is OnFailure.SHARE or len(batch) == 1 or isinstance(exc, self._shared_errors):
                for call in batch:
                    self._fail(call, exc)
                return
            log.info(
                "grouped step failed; retrying its items one by one", extra={"step": self.name, "error": repr(exc)}
            )
            for call in batch:
                await self._execute([call])
            return
        for call, outcome in zip(batch, outcomes, strict=True):
            if not call.future.done():
                call.future.set_result(outcome)

    @staticmethod
    def _fail(call: _Call[I, O], exc: BaseException) -> None:
        if not call.future.done():
            call.future.set_exception(exc)
