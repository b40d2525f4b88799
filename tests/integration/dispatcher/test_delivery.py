"""Dispatcher end to end against the real broker and database: a test RGS that verifies and records
webhooks, a ledger stand-in that produces TransactionEvents, and a running dispatcher wired to both."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import ClientSession, web
from aiokafka.admin import AIOKafkaAdminClient

from hub_client import WebhookVerificationError
from hub_client.signing import verify_signatures
from hub_common.envelope import Envelope, wrap
from hub_common.kafka import DLQ_SUFFIX, TRANSACTIONS, WEBHOOKS_DLQ, KafkaConsumer, KafkaProducer, Record
from hub_common.schemas import ErrorCode, Transaction, TransactionEvent, TxStatus, TxType, WebhookDeadLetter
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_dispatcher.app import create_app
from hub_dispatcher.settings import DispatcherSettings, EndpointSettings
from support.apps import serve
from support.dispatcher_it import CLIENT, SECRETS
from support.waits import eventually


@dataclass
class Delivery:
    headers: dict[str, str]
    body: dict[str, Any]
    verified: bool
    at: datetime


@dataclass
class Receiver:
    """Answers the next queued statuses (then 200) and records every delivery with its verification result."""

    url: str = ""
    deliveries: list[Delivery] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    # A cookie set on every answer (a receiver behind a load balancer's sticky session, say).
    cookie: str | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            verify_signatures(request.headers, raw, [s.get_secret_value() for s in SECRETS])
            verified = True
        except WebhookVerificationError:
            verified = False
        self.deliveries.append(Delivery(dict(request.headers), orjson.loads(raw), verified, datetime.now(UTC)))
        status = self.statuses.pop(0) if self.statuses else 200
        response = web.json_response({"ok": status < 300}, status=status)
        if self.cookie is not None:
            response.set_cookie("session", self.cookie)
        return response

    def for_event(self, event_id: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.body["eventId"] == event_id]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    async with serve(rec.app()) as base:
        rec.url = base + "/webhooks"
        yield rec


@pytest.fixture
def settings(kafka_settings: KafkaSettings, dispatcher_db: DatabaseSettings, receiver: Receiver) -> DispatcherSettings:
    return DispatcherSettings(
        kafka=kafka_settings,
        database=dispatcher_db,
        endpoints={CLIENT: EndpointSettings(url=receiver.url, secrets=SECRETS)},
        retry_schedule_ms=[50, 100, 150],
        timeout_s=5,
        sweep_interval_s=0.2,
        port=0,
    )


@asynccontextmanager
async def running(settings: DispatcherSettings) -> AsyncIterator[str]:
    async with serve(create_app(settings)) as url:
        yield url


def transaction(status: TxStatus, *, ref_id: str | None = None, tx_id: str | None = None) -> Transaction:
    now = datetime.now(UTC)
    return Transaction(
        transaction_id=tx_id or str(uuid.uuid4()),
        ref_id=ref_id or f"bet-{uuid.uuid4().hex[:8]}",
        type=TxType.BET,
        player_id="p-1",
        amount_cents=250,
        currency="EUR",
        status=status,
        reason="insufficient funds" if status is TxStatus.REJECTED else None,
        created_at=now,
        updated_at=now,
        completed_at=now if status.is_final else None,
    )


def event(tx: Transaction, *, client_id: str = CLIENT) -> Envelope:
    code = ErrorCode.INSUFFICIENT_FUNDS if tx.status is TxStatus.REJECTED else None
    payload = TransactionEvent(client_id=client_id, error_code=code, transaction=tx)
    return wrap(payload, correlation_id=f"corr-{uuid.uuid4().hex[:8]}")


async def publish(ledger: KafkaProducer, envelope: Envelope, headers: list[tuple[str, bytes]] | None = None) -> None:
    await ledger.send(TRANSACTIONS, envelope, key=envelope.payload["transaction"]["refId"], headers=headers)


async def status_of(db: asyncpg.Connection, event_id: str) -> str | None:
    value: str | None = await db.fetchval("SELECT status FROM webhook_outbox WHERE id = $1::uuid", event_id)
    return value


async def committed_total(kafka_settings: KafkaSettings, group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    full = kafka_settings.topic(topic)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == full and meta.offset > 0)


@asynccontextmanager
async def dlq_reader(kafka_settings: KafkaSettings, producer: KafkaProducer) -> AsyncIterator[KafkaConsumer]:
    consumer = KafkaConsumer(kafka_settings, [WEBHOOKS_DLQ], group_id=None, dlq_producer=producer, client_id="test-dlq")
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def read_dead_letters(consumer: KafkaConsumer, count: int) -> list[WebhookDeadLetter]:
    found: list[WebhookDeadLetter] = []

    async def enough() -> bool:
        batch = await consumer.getmany(timeout_ms=200)
        found.extend(r.envelope.payload_as(WebhookDeadLetter) for r in batch.records)
        return len(found) >= count

    await eventually(enough, what=f"{count} dead letter(s)")
    return found


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_final_event_is_delivered_once_signed_with_every_secret(
    settings: DispatcherSettings,
    kafka_settings: KafkaSettings,
    receiver: Receiver,
    ledger: KafkaProducer,
    db: asyncpg.Connection,
) -> None:
    ref = "bet-once"
    tx_id = transaction(TxStatus.PENDING).transaction_id
    final = event(transaction(TxStatus.COMPLETED, ref_id=ref, tx_id=tx_id))
    headers = [
        ("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01".encode()),
        ("correlation-id", final.correlation_id.encode()),
    ]
    async with running(settings) as url:
        for status in (TxStatus.PENDING, TxStatus.PROCESSING):
            await publish(ledger, event(transaction(status, ref_id=ref, tx_id=tx_id)))
        await publish(ledger, final, headers=headers)
        await publish(ledger, final, headers=headers)  # the same record again: redelivery must not re-POST

        await eventually(lambda: _is(db, final.event_id, "DELIVERED"), what="delivery")
        await eventually(
            lambda: _equals(committed_total(kafka_settings, settings.consumer_group, TRANSACTIONS), 4),
            what="all four records committed",
        )
        async with ClientSession() as http:
            health = await (await http.get(url + "/health")).json()
            ready = await http.get(url + "/ready")
            metrics = await (await http.get(url + "/metrics")).text()

    (delivery,) = receiver.deliveries
    assert delivery.verified
    assert delivery.body["eventId"] == final.event_id
    assert delivery.body["eventType"] == "transaction.completed"
    assert delivery.body["data"]["refId"] == ref
    assert delivery.body["data"]["status"] == "COMPLETED"
    assert len(delivery.headers["X-Signature"].split()) == 2
    assert len(delivery.headers["webhook-signature"].split()) == 2
    assert delivery.headers["webhook-id"] == final.event_id
    assert delivery.headers["X-Attempt"] == "1"
    assert delivery.headers["X-Correlation-ID"] == final.correlation_id
    assert delivery.headers["traceparent"].split("-")[1] == TRACE_ID
    assert "X-Replay" not in delivery.headers

    row = await db.fetchrow("SELECT * FROM webhook_outbox WHERE id = $1::uuid", final.event_id)
    assert row is not None
    assert row["status"] == "DELIVERED"
    assert row["delivered_at"] is not None
    assert row["retry_count"] == 0
    assert row["event_type"] == "transaction.completed"
    assert row["client_id"] == CLIENT
    assert row["correlation_id"] == final.correlation_id
    assert await db.fetchval("SELECT count(*) FROM webhook_outbox") == 1
    assert health["kafka"] == "connected"
    assert health["database"] == "connected"
    assert ready.status == 200
    assert 'hub_webhook_deliveries_total{endpoint="rgs-demo",result="delivered"}' in metrics


async def test_a_receivers_cookie_never_rides_along_on_later_webhooks(
    settings: DispatcherSettings, receiver: Receiver, ledger: KafkaProducer, db: asyncpg.Connection
) -> None:
    receiver.cookie = "sticky-1"
    # By host name: a cookie jar keeps no cookies of a bare IP address anyway, which would hide what is tested.
    by_name = receiver.url.replace("127.0.0.1", "localhost")
    named = settings.model_copy(update={"endpoints": {CLIENT: EndpointSettings(url=by_name, secrets=SECRETS)}})
    first, second = event(transaction(TxStatus.COMPLETED)), event(transaction(TxStatus.COMPLETED))
    async with running(named):
        await publish(ledger, first)
        await eventually(lambda: _is(db, first.event_id, "DELIVERED"), what="the first delivery")
        await publish(ledger, second)
        await eventually(lambda: _is(db, second.event_id, "DELIVERED"), what="the second delivery")

    assert [d.verified for d in receiver.deliveries] == [True, True]
    assert all("Cookie" not in d.headers for d in receiver.deliveries)


async def test_retried_after_server_errors_then_delivered_with_a_stable_id(
    settings: DispatcherSettings, receiver: Receiver, ledger: KafkaProducer, db: asyncpg.Connection
) -> None:
    receiver.statuses = [500, 503, 500]
    rejected = event(transaction(TxStatus.REJECTED))
    async with running(settings):
        await publish(ledger, rejected)
        await eventually(lambda: _is(db, rejected.event_id, "DELIVERED"), what="delivery after retries")

    deliveries = receiver.for_event(rejected.event_id)
    assert [d.headers["X-Attempt"] for d in deliveries] == ["1", "2", "3", "4"]
    assert {d.headers["webhook-id"] for d in deliveries} == {rejected.event_id}
    assert all(d.verified for d in deliveries)
    assert {d.body["eventType"] for d in deliveries} == {"transaction.rejected"}
    row = await db.fetchrow(
        "SELECT status, retry_count, last_error, attempts FROM webhook_outbox WHERE id = $1::uuid",
        rejected.event_id,
    )
    assert row is not None
    assert row["retry_count"] == 3
    assert row["last_error"] is None
    attempts = orjson.loads(row["attempts"])
    assert [a["status"] for a in attempts] == [500, 503, 500, 200]
    assert [a["outcome"] for a in attempts] == ["retry", "retry", "retry", "delivered"]
    assert all(a["latencyMs"] >= 0 and a["at"] for a in attempts)


async def test_a_waiting_retry_blocks_neither_first_attempts_nor_is_sent_before_due(
    settings: DispatcherSettings, receiver: Receiver, ledger: KafkaProducer, db: asyncpg.Connection
) -> None:
    receiver.statuses = [500]
    slow = settings.model_copy(update={"retry_schedule_ms": [2_000], "retry_jitter": 0.0})
    retried, fresh = event(transaction(TxStatus.COMPLETED)), event(transaction(TxStatus.COMPLETED))
    async with running(slow):
        await publish(ledger, retried)
        await eventually(lambda: _is(db, retried.event_id, "FAILED"), what="first failure")
        due = await db.fetchval("SELECT next_retry_at FROM webhook_outbox WHERE id = $1::uuid", retried.event_id)
        await publish(ledger, fresh)
        await eventually(lambda: _is(db, retried.event_id, "DELIVERED"), what="retried delivery")
        await eventually(lambda: _is(db, fresh.event_id, "DELIVERED"), what="fresh delivery")

    order = [(d.body["eventId"], d.headers["X-Attempt"]) for d in receiver.deliveries]
    assert order == [(retried.event_id, "1"), (fresh.event_id, "1"), (retried.event_id, "2")]
    assert receiver.for_event(retried.event_id)[1].at >= due


async def test_exhausted_schedule_dead_letters_with_history_and_runbook_replay_redelivers(
    settings: DispatcherSettings,
    kafka_settings: KafkaSettings,
    receiver: Receiver,
    ledger: KafkaProducer,
    db: asyncpg.Connection,
) -> None:
    receiver.statuses = [500] * 4
    failed = event(transaction(TxStatus.FAILED))
    async with running(settings), dlq_reader(kafka_settings, ledger) as dlq:
        await publish(ledger, failed)
        (letter,) = await read_dead_letters(dlq, 1)
        assert await status_of(db, failed.event_id) == "DEAD_LETTER"

        # Runbook "Issue 2", queries 1-3, unchanged.
        listed = await db.fetch(
            """SELECT id, event_type, status, retry_count, next_retry_at, last_error
               FROM webhook_outbox
               WHERE status IN ('FAILED', 'DEAD_LETTER')
               ORDER BY created_at DESC
               LIMIT 20;"""
        )
        assert [(str(r["id"]), r["status"], r["retry_count"]) for r in listed] == [(failed.event_id, "DEAD_LETTER", 4)]
        assert listed[0]["event_type"] == "transaction.failed"
        assert listed[0]["next_retry_at"] is None
        assert "retries exhausted after 4 attempts" in listed[0]["last_error"]
        assert await db.fetchrow(f"SELECT * FROM webhook_outbox WHERE id = '{failed.event_id}';") is not None  # noqa: S608 - the runbook's SQL as written, with the test's event id
        assert await db.fetchval(f"SELECT last_error FROM webhook_outbox WHERE id = '{failed.event_id}';")  # noqa: S608 - the runbook's SQL as written, with the test's event id

        # Runbook "Webhook Replay": reset, and the dispatcher picks the row up.
        day = "created_at BETWEEN NOW() - INTERVAL '1 day' AND NOW() + INTERVAL '1 day'"
        await db.execute(
            f"""UPDATE webhook_outbox
                SET status = 'PENDING', retry_count = 0, next_retry_at = NOW(), last_error = NULL
                WHERE status = 'DEAD_LETTER' AND {day};"""  # noqa: S608 - the runbook's SQL as written; {day} is a literal
        )
        await eventually(lambda: _is(db, failed.event_id, "DELIVERED"), what="replayed delivery")
        summary = await db.fetch(f"SELECT status, COUNT(*) FROM webhook_outbox WHERE {day} GROUP BY status;")  # noqa: S608 - the runbook's SQL as written; {day} is a literal

    assert letter.event_id == failed.event_id
    assert letter.client_id == CLIENT
    assert letter.retry_count == 4
    assert [a.attempt for a in letter.attempts] == [1, 2, 3, 4]
    assert [a.status for a in letter.attempts] == [500, 500, 500, 500]
    assert all(a.response and a.error == "HTTP 500" for a in letter.attempts)
    assert letter.body["eventId"] == failed.event_id
    assert [(r["status"], r["count"]) for r in summary] == [("DELIVERED", 1)]
    replayed = receiver.for_event(failed.event_id)[-1]
    assert replayed.headers["X-Replay"] == "true"
    assert replayed.headers["X-Attempt"] == "1"
    assert replayed.headers["webhook-id"] == failed.event_id
    assert replayed.verified


async def test_leftovers_of_a_crash_are_repaired(
    settings: DispatcherSettings, receiver: Receiver, ledger: KafkaProducer, db: asyncpg.Connection
) -> None:
    # (a) The row says attempt 1 failed, but the retry record was never produced (crash before produce):
    #     the redelivered source record re-emits it. (b) A row left PROCESSING by a dead process is taken over.
    lost_retry = event(transaction(TxStatus.COMPLETED))
    stuck = event(transaction(TxStatus.COMPLETED))
    insert = """INSERT INTO webhook_outbox (id, client_id, event_type, payload, status, retry_count, next_retry_at,
                                           updated_at)
                VALUES ($1::uuid, $2, 'transaction.completed', $3::jsonb, $4, $5, now(), now() - interval '1 hour')"""
    await db.execute(
        insert, lost_retry.event_id, CLIENT, orjson.dumps({"eventId": lost_retry.event_id}).decode(), "FAILED", 1
    )
    await db.execute(
        insert, stuck.event_id, CLIENT, orjson.dumps({"eventId": stuck.event_id}).decode(), "PROCESSING", 2
    )
    async with running(settings.model_copy(update={"stale_processing_s": 60})):
        await publish(ledger, lost_retry)
        await eventually(lambda: _is(db, lost_retry.event_id, "DELIVERED"), what="re-emitted retry")
        await eventually(lambda: _is(db, stuck.event_id, "DELIVERED"), what="stale row taken over")

    assert [d.headers["X-Attempt"] for d in receiver.for_event(lost_retry.event_id)] == ["2"]
    (taken_over,) = receiver.for_event(stuck.event_id)
    assert taken_over.headers["X-Attempt"] == "3"
    assert "X-Replay" not in taken_over.headers


async def test_client_error_dead_letters_at_once(
    settings: DispatcherSettings,
    kafka_settings: KafkaSettings,
    receiver: Receiver,
    ledger: KafkaProducer,
    db: asyncpg.Connection,
) -> None:
    receiver.statuses = [400]
    completed = event(transaction(TxStatus.COMPLETED))
    unknown = event(transaction(TxStatus.COMPLETED), client_id="rgs-unknown")
    async with running(settings), dlq_reader(kafka_settings, ledger) as dlq:
        await publish(ledger, completed)
        await publish(ledger, unknown)
        letters = {d.event_id: d for d in await read_dead_letters(dlq, 2)}

    assert len(receiver.for_event(completed.event_id)) == 1
    assert letters[completed.event_id].reason == "non-retryable HTTP 400"
    assert [a.status for a in letters[completed.event_id].attempts] == [400]
    assert letters[unknown.event_id].reason.startswith("no webhook endpoint configured")
    assert receiver.for_event(unknown.event_id) == []
    rows = await db.fetch("SELECT status, retry_count FROM webhook_outbox")
    assert [(r["status"], r["retry_count"]) for r in rows] == [("DEAD_LETTER", 1), ("DEAD_LETTER", 1)]


async def test_open_circuit_skips_the_call_and_schedules_a_retry(
    settings: DispatcherSettings, receiver: Receiver, ledger: KafkaProducer, db: asyncpg.Connection
) -> None:
    slow = settings.model_copy(
        update={"breaker_failure_threshold": 2, "breaker_open_s": 600, "retry_schedule_ms": [600_000]}
    )
    receiver.statuses = [500, 500]
    first, second, third = (event(transaction(TxStatus.COMPLETED)) for _ in range(3))
    async with running(slow):
        await publish(ledger, first)
        await publish(ledger, second)
        for e in (first, second):
            await eventually(functools.partial(_is, db, e.event_id, "FAILED"), what="failed attempt")
        await publish(ledger, third)
        await eventually(lambda: _is(db, third.event_id, "FAILED"), what="skipped attempt")

    assert receiver.for_event(third.event_id) == []
    row = await db.fetchrow("SELECT retry_count, last_error FROM webhook_outbox WHERE id = $1::uuid", third.event_id)
    assert row is not None
    assert row["retry_count"] == 1
    assert row["last_error"] == "circuit open: no call made"


async def test_a_record_whose_ids_are_not_uuids_goes_to_the_dlq_and_the_others_are_delivered(
    settings: DispatcherSettings,
    kafka_settings: KafkaSettings,
    receiver: Receiver,
    ledger: KafkaProducer,
    db: asyncpg.Connection,
) -> None:
    tx = transaction(TxStatus.COMPLETED)
    bad = wrap(TransactionEvent(client_id=CLIENT, transaction=tx), correlation_id="corr-bad", event_id="not-a-uuid")
    good = event(transaction(TxStatus.COMPLETED))
    async with running(settings):
        consumer = KafkaConsumer(
            kafka_settings, [TRANSACTIONS + DLQ_SUFFIX], group_id=None, dlq_producer=ledger, client_id="test-dlq"
        )
        await consumer.start()
        try:
            await publish(ledger, bad)
            await publish(ledger, good)
            parked: list[Record] = []

            async def dead_lettered() -> bool:
                parked.extend((await consumer.getmany(timeout_ms=200)).records)
                return bool(parked)

            await eventually(dead_lettered, what="the malformed record in the dlq")
        finally:
            await consumer.stop()
        await eventually(lambda: _is(db, good.event_id, "DELIVERED"), what="the good event delivered")

    (record,) = parked
    assert record.envelope.event_id == "not-a-uuid"
    assert "is not a UUID" in dict(record.headers)["dlq-reason"].decode()
    assert [d.body["eventId"] for d in receiver.deliveries] == [good.event_id]
    assert await db.fetchval("SELECT count(*) FROM webhook_outbox") == 1


async def _is(db: asyncpg.Connection, event_id: str, status: str) -> bool:
    return await status_of(db, event_id) == status


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected
