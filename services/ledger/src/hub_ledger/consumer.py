"""Consumes `hub.commands` (group hub-ledger) and feeds the per-player queues.

A command is retried until it is handled: infrastructure errors (database, Kafka) forever with backoff, an
unexpected error a few times and then the record goes to `hub.commands.dlq`; a transaction is never dropped
silently. While too many commands are in flight the partitions are paused, and polling goes on so the
consumer keeps its group membership.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from opentelemetry import trace

from hub_common.envelope import EnvelopeError
from hub_common.errors import FatalError, InfrastructureError, KafkaUnavailableError
from hub_common.kafka import KafkaConsumer, Record, TopicPartition
from hub_common.offsets import OffsetTracker
from hub_common.schemas import TransactionCommand, TxType
from hub_common.telemetry import context_from_kafka, correlation_scope
from hub_ledger import metrics
from hub_ledger.ordering import PlayerQueues, Work
from hub_ledger.processor import Backoff

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

Handler = Callable[[TransactionCommand, str], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]
_UNEXPECTED_ATTEMPTS = 5
_TRANSIENT = (
    InfrastructureError,
    OSError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.OperatorInterventionError,
)


class CommandConsumer:
    def __init__(
        self,
        consumer: KafkaConsumer,
        handler: Handler,
        queues: PlayerQueues,
        *,
        max_in_flight: int,
        commit_interval_s: float,
        retry_initial_s: float,
        retry_max_s: float,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._consumer = consumer
        self._handler = handler
        self._queues = queues
        self._tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self._max_in_flight = max_in_flight
        self._commit_interval_s = commit_interval_s
        self._retry = (retry_initial_s, retry_max_s)
        self._sleep = sleep
        self._paused = False

    async def run(self) -> None:
        last_commit = time.monotonic()
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            for tp, next_offset in batch.offsets.items():
                self._tracker.partition(tp).advance(next_offset)
            for record in batch.records:
                await self._dispatch(record)
            self._flow_control()
            if time.monotonic() - last_commit >= self._commit_interval_s:
                await self.commit()
                last_commit = time.monotonic()

    async def commit(self) -> None:
        offsets = self._tracker.committable()
        if not offsets:
            return
        assigned = self._consumer.assignment()
        revoked = [tp for tp in offsets if tp not in assigned]
        self._tracker.forget(revoked)
        for tp in revoked:
            del offsets[tp]
        try:
            await self._consumer.commit(offsets)
            self._tracker.committed(offsets)
        except KafkaUnavailableError as exc:
            # A rebalance in progress: the records stay uncommitted and come back; handling is idempotent.
            log.warning("offset commit failed", extra={"error": exc.message})

    def _flow_control(self) -> None:
        in_flight = self._tracker.in_flight()
        metrics.IN_FLIGHT.set(in_flight)
        if not self._paused and in_flight >= self._max_in_flight:
            self._consumer.pause(*self._consumer.assignment())
            self._paused = True
        elif self._paused and in_flight < self._max_in_flight // 2:
            self._consumer.resume(*self._consumer.paused())
            self._paused = False

    async def _dispatch(self, record: Record) -> None:
        tp = TopicPartition(record.topic, record.partition)
        try:
            command = record.envelope.payload_as(TransactionCommand)
        except EnvelopeError as exc:
            metrics.COMMANDS.labels("dead_lettered").inc()
            await self._consumer.dead_letter(
                record.topic, record.key, record.envelope.encode(), record.headers, exc.message
            )
            return
        part = self._tracker.partition(tp)
        part.start(record.offset)

        async def run() -> None:
            await self._handle_until_done(record, command)

        done = functools.partial(part.finish, record.offset)
        self._queues.submit(command.player_id, Work(run, done, credit=command.type is not TxType.BET))

    async def _handle_until_done(self, record: Record, command: TransactionCommand) -> None:
        backoff = Backoff(*self._retry)
        unexpected = 0
        while True:
            try:
                with (
                    correlation_scope(record.envelope.correlation_id),
                    tracer.start_as_current_span("ledger.command", context=context_from_kafka(record.headers)),
                ):
                    await self._handler(command, record.envelope.correlation_id)
                metrics.COMMANDS.labels("handled").inc()
                return
            except asyncio.CancelledError:
                raise
            except FatalError:
                raise
            except _TRANSIENT as exc:
                metrics.HANDLER_ERRORS.labels("infrastructure").inc()
                log.warning("command handling failed; retrying", extra={"refId": command.ref_id, "error": repr(exc)})
            except Exception:
                unexpected += 1
                metrics.HANDLER_ERRORS.labels("unexpected").inc()
                log.exception("unexpected error handling a command", extra={"refId": command.ref_id})
                if unexpected >= _UNEXPECTED_ATTEMPTS:
                    # The row stays open: the sweeper resumes it later. The record is kept for an SRE.
                    await self._consumer.dead_letter(
                        record.topic,
                        record.key,
                        record.envelope.encode(),
                        record.headers,
                        "unexpected error while handling (see ledger logs)",
                    )
                    metrics.COMMANDS.labels("dead_lettered").inc()
                    return
            await self._sleep(backoff.next())
