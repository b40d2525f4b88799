"""Publishes `event_outbox` rows to Kafka in id order and marks them published.

Woken right after each commit that wrote events, and polling as well (a commit by another replica, or a
failed publish). One relay publishes at a time across replicas (transaction-level advisory lock), so events
of one refId never overtake each other. A crash after the send but before the mark re-sends: at-least-once,
consumers dedupe by eventId.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

import asyncpg
import orjson
from opentelemetry import trace
from prometheus_client import Counter, Gauge

from hub_common.errors import InfrastructureError
from hub_common.kafka import KafkaProducer
from hub_common.telemetry import context_from_kafka

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

OUTBOX_PUBLISHED = Counter("hub_ledger_outbox_published_total", "Outbox events published to Kafka")
OUTBOX_BACKLOG = Gauge("hub_ledger_outbox_backlog", "Unpublished outbox events seen by the last relay run")
OUTBOX_ERRORS = Counter("hub_ledger_outbox_errors_total", "Outbox relay runs that failed")

_RELAY_LOCK = 7_246_318_002


class OutboxRelay:
    def __init__(
        self, pool: asyncpg.Pool, producer: KafkaProducer, *, poll_s: float, batch: int, record_spans: bool = False
    ) -> None:
        """`record_spans`: a span per published event, in the trace the event's headers carry (only worth its
        CPU where spans are exported)."""
        self._pool = pool
        self._record_spans = record_spans
        self._producer = producer
        self._poll_s = poll_s
        self._batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            try:
                more = await self.publish_batch()
            except (InfrastructureError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                OUTBOX_ERRORS.inc()
                log.warning("outbox relay run failed", extra={"error": repr(exc)})
                more = False
            if more:
                continue
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)

    async def publish_batch(self) -> bool:
        """Publish one batch; True when a full batch went out (there may be more)."""
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _RELAY_LOCK):
                return False
            rows = await conn.fetch(
                """SELECT id, topic, key, value, headers FROM event_outbox WHERE published_at IS NULL
                   ORDER BY id LIMIT $1""",
                self._batch,
            )
            OUTBOX_BACKLOG.set(len(rows))
            await self._send_all(rows)
            if rows:
                await conn.execute(
                    "UPDATE event_outbox SET published_at = now() WHERE id = ANY($1::bigint[])", [r["id"] for r in rows]
                )
                OUTBOX_PUBLISHED.inc(len(rows))
            return len(rows) == self._batch

    async def _send_all(self, rows: list[asyncpg.Record]) -> None:
        """Send the batch; events of one key one after another (in id order), different keys concurrently.

        Waiting for each ack in turn would cost a producer linger per event; concurrent sends share batches.
        Keeping each key's events in one chain keeps their order whatever the client does with retries.
        """
        chains: dict[str | None, list[asyncpg.Record]] = {}
        for row in rows:
            chains.setdefault(row["key"], []).append(row)
        try:
            async with asyncio.TaskGroup() as group:
                for chain in chains.values():
                    group.create_task(self._send_chain(chain))
        except ExceptionGroup as failed:
            # The caller handles one send's error (the batch stays unpublished and is retried whole).
            raise failed.exceptions[0] from failed

    async def _send_chain(self, rows: list[asyncpg.Record]) -> None:
        for row in rows:
            topic = self._producer.settings.topic(row["topic"])
            headers = [(k, v.encode()) for k, v in orjson.loads(row["headers"])]
            send = self._producer.send_raw(
                topic,
                bytes(row["value"]),
                key=row["key"].encode() if row["key"] is not None else None,
                headers=headers,
            )
            if not self._record_spans:
                await send
                continue
            with tracer.start_as_current_span(
                f"{topic} publish", context=context_from_kafka(headers), kind=trace.SpanKind.PRODUCER
            ):
                await send
