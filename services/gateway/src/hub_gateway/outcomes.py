"""Waking HTTP requests when the ledger's outcome arrives on hub.transactions.

One listener per gateway process reads every partition of hub.transactions from the latest offsets, without a
consumer group (nothing to commit: a missed event only turns a 201 into a 202). Requests register a watch
(keyed by transactionId) before their command is produced, so an early event cannot be missed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

from hub_common.envelope import EnvelopeError, schema_of
from hub_common.errors import KafkaUnavailableError
from hub_common.kafka import TRANSACTIONS, KafkaConsumer, Record, TopicPartition
from hub_common.schemas import TransactionEvent
from hub_common.settings import KafkaSettings
from hub_common.telemetry import context_from_kafka

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

_EVENT_SCHEMA = schema_of(TransactionEvent)
_METADATA_ATTEMPTS = 100


class Watch:
    def __init__(self, future: asyncio.Future[TransactionEvent]) -> None:
        self._future = future

    async def wait(self, timeout_s: float) -> TransactionEvent | None:
        """The final event, or None when the budget runs out first."""
        if timeout_s > 0 and not self._future.done():
            await asyncio.wait({self._future}, timeout=timeout_s)
        return self._future.result() if self._future.done() else None


class OutcomeWaiter:
    def __init__(self) -> None:
        self._watches: dict[str, set[asyncio.Future[TransactionEvent]]] = {}

    @property
    def watching(self) -> int:
        return sum(len(futures) for futures in self._watches.values())

    def watches(self, transaction_id: str) -> bool:
        return transaction_id in self._watches

    @contextmanager
    def watch(self, transaction_id: str) -> Iterator[Watch]:
        future: asyncio.Future[TransactionEvent] = asyncio.get_running_loop().create_future()
        self._watches.setdefault(transaction_id, set()).add(future)
        try:
            yield Watch(future)
        finally:
            futures = self._watches.get(transaction_id)
            if futures is not None:
                futures.discard(future)
                if not futures:
                    del self._watches[transaction_id]
            future.cancel()

    def deliver(self, event: TransactionEvent) -> int:
        """Wake the watchers of a final event; intermediate states (PROCESSING) keep them waiting."""
        if not event.transaction.status.is_final:
            return 0
        woken = 0
        for future in self._watches.get(event.transaction.transaction_id, ()):
            if not future.done():
                future.set_result(event)
                woken += 1
        return woken


class OutcomeListener:
    """Feeds `OutcomeWaiter` from hub.transactions. `start` pins every partition's end offset before returning."""

    def __init__(self, settings: KafkaSettings, waiter: OutcomeWaiter, *, client_id: str) -> None:
        self._topic = settings.topic(TRANSACTIONS)
        self._waiter = waiter
        # No group: every partition is assigned to this process (and re-assigned when partitions are added).
        # No dead-letter producer: poison records are not ours to park (the dispatcher owns this topic's DLQ).
        self._consumer = KafkaConsumer(
            settings,
            [TRANSACTIONS],
            group_id=None,
            dlq_producer=None,
            client_id=client_id,
            auto_offset_reset="latest",
        )

    async def start(self) -> None:
        await self._consumer.start()
        try:
            assignment = await self._assignment()
            await self._consumer.seek_to_end(*assignment)
        except KafkaUnavailableError:
            await self._consumer.stop()
            raise
        log.info("listening for outcomes", extra={"topic": self._topic, "partitions": len(assignment)})

    async def _assignment(self) -> list[TopicPartition]:
        # The assignment follows the first metadata answer; a fresh topic may take a few rounds to show up.
        for _ in range(_METADATA_ATTEMPTS):
            assignment = sorted(self._consumer.assignment())
            if assignment:
                return assignment
            await asyncio.sleep(0.1)
        raise KafkaUnavailableError(f"no partition of {self._topic} was assigned")

    async def stop(self) -> None:
        try:
            await self._consumer.stop()
        except asyncio.CancelledError:
            # With the broker unreachable, aiokafka's fetcher lets the cancellation of its own fetch task
            # escape `stop()`. Only a cancellation aimed at us may interrupt the rest of the shutdown.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            log.warning("outcome listener stopped while Kafka was unreachable")

    async def run(self) -> None:
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=1000)
            except KafkaUnavailableError as exc:
                # Waiting requests fall back to 202; the consumer reconnects by itself.
                log.warning("outcome listener fetch failed", extra={"error": exc.message})
                await asyncio.sleep(1)
                continue
            for record in batch.records:
                self._handle(record)

    def _handle(self, record: Record) -> None:
        # Poison records are not ours to dead-letter (the dispatcher owns this topic's DLQ): skip them.
        if record.envelope.schema_name != _EVENT_SCHEMA:
            return
        # Most events are another process's requests' or not final: skipped before the payload is validated.
        transaction = record.envelope.payload.get("transaction")
        if isinstance(transaction, dict):
            transaction_id = transaction.get("transactionId")
            if isinstance(transaction_id, str) and not self._waiter.watches(transaction_id):
                return
        try:
            event = record.envelope.payload_as(TransactionEvent)
        except EnvelopeError as exc:
            log.debug("skipping undecodable outcome record", extra={"reason": str(exc)})
            return
        if self._waiter.deliver(event):
            # Where the outcome reached a waiting request, in the request's trace (the event carries it).
            tracer.start_span(
                f"{record.topic} receive", context=context_from_kafka(record.headers), kind=trace.SpanKind.CONSUMER
            ).end()
