"""A consumer loop that hands records to concurrent deliveries without blocking on them.

- At most `max_in_flight` deliveries run at once; beyond that the loop waits before taking more.
- Offsets are committed only below the lowest unfinished record of each partition (at-least-once).
- With `due_at`, a record that is not due yet pauses its partition until then, holding it and the records
  fetched after it in memory (not seeking back: re-fetching and re-decoding a waiting backlog on every wake-up
  costs more CPU than the deliveries), so a retry tier waits per partition without blocking the others;
  paused partitions keep the group membership.
- A record whose payload does not fit goes to `<topic>.dlq`; infrastructure errors are retried with backoff.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from datetime import datetime

from hub_common.envelope import EnvelopeError
from hub_common.errors import InfrastructureError, KafkaUnavailableError
from hub_common.kafka import Batch, KafkaConsumer, Record, TopicPartition
from hub_common.offsets import OffsetTracker, PartitionOffsets
from hub_dispatcher import metrics

log = logging.getLogger(__name__)

Handler = Callable[[Record], Awaitable[None]]
DueAt = Callable[[Record], datetime | None]


class ConsumerLoop:
    def __init__(
        self,
        name: str,
        consumer: KafkaConsumer,
        handler: Handler,
        *,
        max_in_flight: int,
        due_at: DueAt | None = None,
        poll_ms: int = 1000,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.name = name
        self.consumer = consumer
        self._consumer = consumer
        self._handler = handler
        self._due_at = due_at
        self._poll_ms = poll_ms
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._tasks: set[asyncio.Task[None]] = set()
        self._resume_at: dict[TopicPartition, float] = {}
        # Records fetched from a paused partition that were not due yet, in offset order.
        self._held: dict[TopicPartition, list[Record]] = {}
        self._failure: BaseException | None = None
        # The offsets bookkeeping is only right if it hears of every rebalance.
        consumer.set_rebalance_listener(self)

    async def run(self) -> None:
        try:
            while True:
                if self._failure is not None:
                    raise self._failure
                await self._resume_due()
                batch = await self._poll()
                await self._dispatch(batch)
                await self._commit()
        finally:
            await self._drain()

    # --- polling and pausing ---------------------------------------------------------------------------------

    async def _poll(self) -> Batch:
        timeout = self._poll_ms
        if self._resume_at:
            until = min(self._resume_at.values()) - time.time()
            timeout = max(1, min(timeout, int(until * 1000) + 1))
        try:
            return await self._consumer.getmany(timeout_ms=timeout)
        except KafkaUnavailableError as exc:
            log.warning("poll failed; retrying", extra={"consumer": self.name, "error": str(exc)})
            await asyncio.sleep(self._backoff_s)
            return Batch()

    async def _resume_due(self) -> None:
        now = time.time()
        assigned = self._consumer.assignment()
        for tp, when in list(self._resume_at.items()):
            if when > now:
                continue
            del self._resume_at[tp]
            held = self._held.pop(tp, [])
            if tp not in assigned:
                continue
            if held:
                await self._start(tp, held, upto=held[-1].offset + 1)
            if tp not in self._resume_at:
                self._consumer.resume(tp)

    def _hold(self, tp: TopicPartition, records: list[Record], when: datetime) -> None:
        self._consumer.pause(tp)
        self._held[tp] = records
        self._resume_at[tp] = when.timestamp()

    def _not_yet_due(self, record: Record) -> datetime | None:
        if self._due_at is None:
            return None
        try:
            due = self._due_at(record)
        except EnvelopeError:
            return None  # the handler sees the same error and dead-letters the record
        if due is not None and due.timestamp() > time.time():
            return due
        return None

    # --- dispatching -----------------------------------------------------------------------------------------

    async def _dispatch(self, batch: Batch) -> None:
        by_tp: dict[TopicPartition, list[Record]] = {}
        for record in batch.records:
            by_tp.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
        for tp, upto in batch.offsets.items():
            if tp in self._resume_at:
                continue  # paused after this fetch; its records are held or will be fetched again
            await self._start(tp, by_tp.get(tp, []), upto=upto)
        metrics.IN_FLIGHT.labels(consumer=self.name).set(len(self._tasks))

    async def _start(self, tp: TopicPartition, records: list[Record], *, upto: int) -> None:
        """Hand out `records` of `tp` in order until one is not due; hold that one and the rest."""
        part = self._tracker.partition(tp)
        for index, record in enumerate(records):
            due = self._not_yet_due(record)
            if due is not None:
                self._hold(tp, records[index:], due)
                part.advance(record.offset)
                return
            await self._slots.acquire()
            part.start(record.offset)
            task = asyncio.create_task(self._handle(record), name=f"{self.name}:{tp.partition}:{record.offset}")
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._done, part=part, offset=record.offset))
        part.advance(upto)

    async def _handle(self, record: Record) -> None:
        backoff = self._backoff_s
        while True:
            try:
                try:
                    await self._handler(record)
                except EnvelopeError as exc:
                    await self._consumer.dead_letter(
                        record.topic, record.key, record.envelope.encode(), record.headers, str(exc)
                    )
                return
            except InfrastructureError as exc:
                log.warning(
                    "delivery step failed; retrying",
                    extra={"consumer": self.name, "offset": record.offset, "error": str(exc)},
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)

    def _done(self, task: asyncio.Task[None], *, part: PartitionOffsets, offset: int) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # Not an error we know how to handle: stop the loop (and the service) rather than skip the record.
            self._failure = self._failure or exc
            return
        part.finish(offset)

    async def _commit(self, only: Sequence[TopicPartition] | None = None) -> None:
        assigned = self._consumer.assignment()
        offsets = {tp: o for tp, o in self._tracker.committable(only).items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaUnavailableError as exc:
            log.warning("offset commit failed; will retry", extra={"consumer": self.name, "error": str(exc)})
            return
        self._tracker.committed(offsets)

    async def _drain(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with suppress(InfrastructureError):
            await self._commit()

    # --- rebalance -------------------------------------------------------------------------------------------

    async def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        with suppress(InfrastructureError):
            await self._commit(revoked)
        self._tracker.forget(revoked)
        for tp in revoked:
            self._resume_at.pop(tp, None)
            self._held.pop(tp, None)

    async def partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Start from the committed offsets with fresh bookkeeping; stale tasks keep orphaned state objects.
        self._tracker.forget(assigned)
        for tp in assigned:
            self._resume_at.pop(tp, None)
            self._held.pop(tp, None)
