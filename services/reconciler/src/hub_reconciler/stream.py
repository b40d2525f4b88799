"""The continuous join: one faust agent over hub.transactions, operator.transactions and the sweep topic,
writing the state of each refId into a faust Table (changelog-backed).

faust joins are not implemented (faust/joins.py raises NotImplementedError), so the join is a table keyed
by refId that both streams update. The three topics are co-partitioned: same partition count, key refId.
Tables may change only inside stream iteration, so the grace-window timer does not touch the table: it
sends a SweepTick (key refId) that the agent handles like any other record.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import faust

from hub_common.envelope import Envelope, EnvelopeError, decode, wrap
from hub_common.errors import InfrastructureError
from hub_common.kafka import DLQ_SUFFIX, OPERATOR_TRANSACTIONS, SWEEP, TRANSACTIONS, KafkaProducer
from hub_common.schemas import TransactionEvent
from hub_common.telemetry import correlation_scope, new_correlation_id
from hub_reconciler.compare import is_due, is_expired
from hub_reconciler.emitter import MismatchEmitter
from hub_reconciler.join import Step, on_hub_event, on_operator_record, on_tick
from hub_reconciler.metrics import JOINED_RECORDS
from hub_reconciler.models import JoinEntry, OperatorRecord, SweepTick
from hub_reconciler.settings import ReconcilerSettings

log = logging.getLogger(__name__)

JOIN_TOPICS = (TRANSACTIONS, OPERATOR_TRANSACTIONS, SWEEP)
_MAX_BACKOFF_S = 5.0

OnFatal = Callable[[BaseException], None]


def broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(",") if host.strip())


class JoinStream:
    """Owns the faust app; `start()`/`stop()` run it inside the caller's event loop (no faust Worker)."""

    def __init__(
        self,
        settings: ReconcilerSettings,
        *,
        producer: KafkaProducer,
        emitter: MismatchEmitter,
        on_fatal: OnFatal,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._emitter = emitter
        self._on_fatal = on_fatal
        self._clock = clock
        self._failed = False
        kafka = settings.kafka
        self._topics = {kafka.topic(name): name for name in JOIN_TOPICS}
        self._app = faust.App(
            kafka.topic(settings.app_id),
            broker=broker_url(kafka.bootstrap_servers),
            store=settings.store,
            datadir=str(settings.data_dir),
            autodiscover=False,
            web_enabled=False,
            processing_guarantee="at_least_once",
            topic_partitions=kafka.partitions,
            topic_replication_factor=kafka.replication_factor,
            # One reconciler replica: standbys would only make the sweep scan partitions it does not own.
            table_standby_replicas=0,
            consumer_auto_offset_reset="earliest",
            loop=asyncio.get_running_loop(),
        )
        self._table = self._app.Table("joins", default=None, partitions=kafka.partitions, key_type=str, value_type=dict)
        source = self._app.topic(*self._topics, key_serializer="raw", value_serializer="raw")
        # concurrency=1: faust #606 commits past in-flight events with more than one actor.
        self._app.agent(source, name="reconciler-join", concurrency=1)(self._join)
        self._app.timer(settings.sweep_interval_s, name="reconciler-sweep")(self._sweep)

    @property
    def healthy(self) -> bool:
        return not self._failed

    async def start(self) -> None:
        await self._app.start()

    async def stop(self) -> None:
        await self._app.stop()

    async def _join(self, stream: Any) -> None:
        async for event in stream.events():
            await self._handle(event.message.topic, event.key, event.value)

    async def _handle(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        try:
            await self._handle_record(topic, key, value)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A crashed faust agent stays dead while the worker looks alive; stop the service instead.
            self._failed = True
            log.critical("join agent failed", exc_info=exc)
            self._on_fatal(exc)
            raise

    async def _handle_record(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        source = self._topics.get(topic, topic)
        try:
            envelope = decode(value)
            ref_id, step = self._step(source, envelope)
        except EnvelopeError as exc:
            reason = str(exc)
            await self._retrying(lambda: self._dead_letter(topic, key, value, reason))
            return
        JOINED_RECORDS.labels(source=source).inc()
        with correlation_scope(envelope.correlation_id):
            for finding in step.findings:
                entry = step.entry
                assert entry is not None  # findings always come with the entry they were found in
                emit = partial(self._emitter.emit, ref_id, finding, entry, correlation_id=envelope.correlation_id)
                await self._retrying(emit)
            if step.delete:
                self._table.pop(ref_id, None)
            elif step.entry is not None:
                # Re-assign, never mutate in place: only assignment reaches the changelog.
                self._table[ref_id] = step.entry.to_wire()

    def _step(self, source: str, envelope: Envelope) -> tuple[str, Step]:
        now = self._clock()
        grace = self._settings.grace_window_s
        if source == TRANSACTIONS:
            event = envelope.payload_as(TransactionEvent)
            ref_id = event.transaction.ref_id
            return ref_id, on_hub_event(self._current(ref_id), event, now=now, grace_s=grace)
        if source == OPERATOR_TRANSACTIONS:
            record = envelope.payload_as(OperatorRecord)
            ref_id = record.transaction_id
            return ref_id, on_operator_record(self._current(ref_id), record, now=now, grace_s=grace)
        tick = envelope.payload_as(SweepTick)
        step = on_tick(self._current(tick.ref_id), now=now, grace_s=grace, retention_s=self._settings.retention_s)
        return tick.ref_id, step

    def _current(self, ref_id: str) -> JoinEntry | None:
        raw = self._table.get(ref_id)
        return JoinEntry.model_validate(raw) if raw is not None else None

    async def _sweep(self) -> None:
        now = self._clock()
        due = []
        for ref_id, raw in list(self._table.items()):
            entry = JoinEntry.model_validate(raw)
            if is_due(entry, now=now, grace_s=self._settings.grace_window_s) or is_expired(
                entry, now=now, retention_s=self._settings.retention_s
            ):
                due.append(ref_id)
        for ref_id in due:
            tick = wrap(SweepTick(ref_id=ref_id), correlation_id=new_correlation_id())
            await self._retrying(partial(self._producer.send, SWEEP, tick, key=ref_id))

    async def _dead_letter(self, topic: str, key: bytes | None, value: bytes | None, reason: str) -> None:
        log.warning("record sent to dead-letter topic", extra={"topic": topic, "reason": reason})
        headers = [("dlq-reason", reason.encode()), ("dlq-source-topic", topic.encode())]
        await self._producer.send_raw(topic + DLQ_SUFFIX, value or b"", key=key, headers=headers)

    async def _retrying(self, action: Callable[[], Awaitable[None]]) -> None:
        """Retry a Kafka write until it succeeds: the partition waits rather than skip a mismatch."""
        delay = 0.2
        while True:
            try:
                await action()
                return
            except InfrastructureError as exc:
                log.warning("kafka write failed; retrying", extra={"error": str(exc), "delayS": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
