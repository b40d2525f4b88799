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
from hub_common.kafka import KafkaProducer, RawRecord
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
        """Send the batch in rounds: the first event of every key, then (once those are acked) the second, ...;
        within a round every record is produced at once (one produce request per partition leader).

        An event is sent only once the one before it of its key is acked, so a failure can never publish a
        later event of a refId (its final status) ahead of an earlier one, whatever the client does with
        retries. Most batches hold one or two events per key: one or two rounds.
        """
        rounds: list[list[RawRecord]] = []
        depth: dict[str | None, int] = {}
        for row in rows:
            n = depth.get(row["key"], 0)
            depth[row["key"]] = n + 1
            if n == len(rounds):
                rounds.append([])
            rounds[n].append(
                RawRecord(
                    topic=self._producer.settings.topic(row["topic"]),
                    value=bytes(row["value"]),
                    key=row["key"].encode() if row["key"] is not None else None,
                    headers=[(k, v.encode()) for k, v in orjson.loads(row["headers"])],
                )
            )
        for records in rounds:
            if not self._record_spans:
                await self._producer.send_many_raw(records)
                continue
            spans = [
                tracer.start_span(
                    f"{r.topic} publish", context=context_from_kafka(r.headers), kind=trace.SpanKind.PRODUCER
                )
                for r in records
            ]
            try:
                await self._producer.send_many_raw(records)
            finally:
                for one in spans:
                    one.end()
