"""Publishes `event_outbox` rows to Kafka in id order and marks them published.

One relay publishes at a time across replicas, so events of one refId never overtake each other: the relay that
holds a session advisory lock on its own connection (`_RELAY_LOCK`) leads; the others wait to take over when its
connection goes. The leader is woken, not polling:
- by this process right after each commit that wrote events (`wake`);
- by PostgreSQL NOTIFY on `OUTBOX_CHANNEL` (`hub_common.transitions.announce_events`): a follower replica's
  commits, `hubctl tx resolve`;
- and every `poll_s` anyway (an event whose announcement was lost, a failed publish).

Each round is one statement (mark the batch just sent as published, read the next one) and one Kafka send. A
crash after the send but before the mark re-sends: at-least-once, consumers dedupe by eventId.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

import asyncpg
import orjson
from opentelemetry import trace
from prometheus_client import Counter, Gauge

from hub_common.errors import InfrastructureError, KafkaUnavailableError
from hub_common.kafka import KafkaProducer
from hub_common.telemetry import context_from_kafka
from hub_common.transitions import OUTBOX_CHANNEL, announce_events

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

OUTBOX_PUBLISHED = Counter("hub_ledger_outbox_published_total", "Outbox events published to Kafka")
OUTBOX_BACKLOG = Gauge("hub_ledger_outbox_backlog", "Unpublished outbox events seen by the last relay run")
OUTBOX_ERRORS = Counter("hub_ledger_outbox_errors_total", "Outbox relay runs that failed")

_RELAY_LOCK = 7_246_318_002
_DB_ERRORS = (InfrastructureError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)

# The batch sent last ($1) marked published, and the next one read, in one round trip. Both parts see the same
# snapshot, so the read still sees the marked rows as unpublished: they are left out by id.
_MARK_AND_NEXT = """
    WITH marked AS (UPDATE event_outbox SET published_at = now() WHERE id = ANY($1::bigint[]))
    SELECT id, topic, key, value, headers FROM event_outbox
    WHERE published_at IS NULL AND NOT (id = ANY($1::bigint[]))
    ORDER BY id LIMIT $2"""

Connect = Callable[[], Awaitable[asyncpg.Connection]]


class OutboxRelay:
    def __init__(
        self,
        connect: Connect,
        producer: KafkaProducer,
        *,
        poll_s: float,
        batch: int,
        record_spans: bool = False,
    ) -> None:
        """`connect`: a connection of the relay's own (it holds the leader's lock and LISTENs on it).
        `record_spans`: a span per published event, in the trace the event's headers carry (only worth its CPU
        where spans are exported)."""
        self._connect = connect
        self._producer = producer
        self._poll_s = poll_s
        self._batch = batch
        self._record_spans = record_spans
        self._wake = asyncio.Event()
        self.leading = False

    def wake(self) -> None:
        """Events were committed by this process."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await self._connect()
                await self._follow(conn)
                await self._lead(conn)
            except _DB_ERRORS as exc:
                OUTBOX_ERRORS.inc()
                log.warning("outbox relay lost its database connection", extra={"error": repr(exc)})
                await asyncio.sleep(self._poll_s)
            finally:
                self.leading = False
                if conn is not None:
                    with suppress(*_DB_ERRORS):
                        await conn.close(timeout=2)

    async def _follow(self, conn: asyncpg.Connection) -> None:
        """Until this relay holds the lock: another replica's relay publishes, and hears of our commits."""
        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _RELAY_LOCK):
            if await self._woken(self._poll_s):
                await announce_events(conn)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        self.leading = True
        await conn.add_listener(OUTBOX_CHANNEL, self._notified)
        sent: list[int] = []
        while True:
            self._wake.clear()
            rows = await conn.fetch(_MARK_AND_NEXT, sent, self._batch)
            OUTBOX_PUBLISHED.inc(len(sent))
            OUTBOX_BACKLOG.set(len(rows))
            sent = []
            if not rows:
                await self._woken(self._poll_s)
                continue
            try:
                await self._send_all(rows)
            except KafkaUnavailableError as exc:
                # The rows stay unpublished and are read again.
                OUTBOX_ERRORS.inc()
                log.warning("outbox relay could not publish", extra={"error": exc.message})
                await asyncio.sleep(self._poll_s)
                continue
            sent = [row["id"] for row in rows]

    def _notified(self, *_: object) -> None:
        self._wake.set()

    async def _woken(self, timeout_s: float) -> bool:
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout_s)
        woken = self._wake.is_set()
        self._wake.clear()
        return woken

    async def _send_all(self, rows: list[asyncpg.Record]) -> None:
        """Send the batch; events of one key one after another (in id order), different keys concurrently.

        Waiting for each ack in turn would cost a producer round trip per event; concurrent sends share batches.
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
