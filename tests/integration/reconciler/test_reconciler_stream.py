"""The continuous join end to end on a real broker and PostgreSQL, with a restart in the middle of the stream:
every mismatch is published once (one eventId per finding), none is lost, and a late operator record resolves
the mismatch it clears."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY

from hub_common.envelope import wrap
from hub_common.kafka import MISMATCHES, OPERATOR_TRANSACTIONS, TRANSACTIONS, KafkaConsumer, KafkaProducer
from hub_common.operator import OperatorRecord
from hub_common.reconciliation.events import Mismatch, MismatchResolved
from hub_common.schemas import Transaction, TransactionEvent, TxStatus, TxType
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_reconciler.app import create_app
from hub_reconciler.settings import ReconcilerSettings
from support.apps import serve
from support.reconciliation_seed import feed_covered, hub_tx, op_id, op_record
from support.roles import RoleDbSettings
from support.waits import eventually

WAIT_S = 60.0
NOW = datetime.now(UTC)


def hub_event(tx_id: str, ref_id: str, status: str) -> TransactionEvent:
    # The join finds the event's operator id in the row its transactionId names.
    tx = Transaction(
        transaction_id=tx_id,
        ref_id=ref_id,
        type=TxType.BET,
        player_id="p-1",
        amount_cents=100,
        currency="EUR",
        status=TxStatus(status),
        created_at=NOW,
        updated_at=NOW,
    )
    return TransactionEvent(client_id="rgs-demo", error_code=None, transaction=tx)


def record(ref_id: str, amount: int = 100) -> OperatorRecord:
    return OperatorRecord(transaction_id=op_id(ref_id), amount_cents=amount, currency="EUR", status="COMPLETED")


async def publish(
    producer: KafkaProducer,
    conn: asyncpg.Connection,
    hub: list[tuple[str, str]],
    operator: list[OperatorRecord],
    tx_ids: dict[str, str],
) -> None:
    for ref_id, status in hub:
        event = hub_event(tx_ids[ref_id], ref_id, status)
        await producer.send(TRANSACTIONS, wrap(event, correlation_id="c"), key=ref_id)
    for item in operator:
        # As the feed poller does: each record it publishes is stored too.
        await op_record(conn, item.transaction_id, amount=item.amount_cents, created=NOW)
        await producer.send(OPERATOR_TRANSACTIONS, wrap(item, correlation_id="feed"), key=item.transaction_id)


def sweeps() -> float:
    return REGISTRY.get_sample_value("hub_reconciliation_sweep_runs_total", {"result": "ok"}) or 0.0


async def drain(consumer: KafkaConsumer, until: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(schema, eventId, payload) of every mismatch event until `until(events)` holds or the wait ends."""
    events: list[tuple[str, str, dict[str, Any]]] = []
    deadline = time.monotonic() + WAIT_S
    while not until(events) and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=300)
        events.extend((r.envelope.schema_name, r.envelope.event_id, r.envelope.payload) for r in batch.records)
    return events


def opened(events: list[tuple[str, str, dict[str, Any]]]) -> set[tuple[str, str]]:
    return {(p["operatorId"], p["kind"]) for s, _, p in events if s == "Mismatch/1"}


@pytest.fixture
async def conn(db_settings: DatabaseSettings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(db_settings.url.get_secret_value())
    yield connection
    await connection.close()


async def test_join_survives_a_restart_mid_stream(
    kafka_settings: KafkaSettings,
    conn: asyncpg.Connection,
    role_db_settings: RoleDbSettings,
    tmp_path: Path,
) -> None:
    tx_ids: dict[str, str] = {}
    for ref in ("ok", "amount", "missing", "late"):
        tx_ids[ref] = str(await hub_tx(conn, ref, created=NOW, completed=NOW))
    tx_ids["tombstone"] = str(await hub_tx(conn, "tombstone", type="REFUND", sent=False, created=NOW, completed=NOW))
    tx_ids["rejected"] = str(await hub_tx(conn, "rejected", status="REJECTED", created=NOW, completed=NOW))
    await feed_covered(conn, NOW + timedelta(hours=1))
    settings = ReconcilerSettings(
        kafka=kafka_settings,
        database=role_db_settings("reconciler"),
        port=0,
        grace_window_s=1.5,
        sweep_interval_s=0.3,
        batch_within_s=0.05,
        feed_enabled=False,
        daily_enabled=False,
        data_dir=tmp_path / "faust",
    )
    failures: list[str] = []
    producer = KafkaProducer(kafka_settings, client_id="test")
    await producer.start()
    expected = {
        (op_id("amount"), "AMOUNT_MISMATCH"),
        (op_id("missing"), "MISSING_IN_OPERATOR"),
        (op_id("late"), "MISSING_IN_OPERATOR"),
    }
    expected |= {(op_id("ghost"), "MISSING_IN_HUB")}
    try:
        async with serve(create_app(settings, on_fatal=failures.append)):
            await publish(producer, conn, [("ok", "COMPLETED"), ("amount", "COMPLETED")], [record("ok")], tx_ids)
            await producer.send_raw(kafka_settings.topic(TRANSACTIONS), b"not json", key=b"poison")

            async def touched() -> bool:
                return bool(await conn.fetchval("SELECT count(*) FROM reconciliation_join") >= 2)

            await eventually(touched, what="the first records in the join's state")
        # Stopped mid-stream, inside the grace window; the rest arrives while it is down.
        await publish(
            producer,
            conn,
            [("missing", "COMPLETED"), ("late", "COMPLETED"), ("tombstone", "COMPLETED"), ("rejected", "REJECTED")],
            [record("amount", amount=90), record("ghost")],
            tx_ids,
        )
        async with serve(create_app(settings, on_fatal=failures.append)):
            consumer = KafkaConsumer(
                kafka_settings, [MISMATCHES], group_id="test-mismatches", dlq_producer=producer, client_id="test"
            )
            await consumer.start()
            try:
                events = await drain(consumer, lambda e: opened(e) >= expected)
                # The late record clears its MISSING_IN_OPERATOR.
                await publish(producer, conn, [], [record("late")], tx_ids)
                events += await drain(consumer, lambda e: any(s == "MismatchResolved/1" for s, _, _ in e))
                # Sweeps go on; nothing may be repeated under a new eventId.
                swept = sweeps()
                await eventually(lambda: sweeps() >= swept + 3, what="three more sweeps")
                events += await drain(consumer, lambda e: True)
            finally:
                await consumer.stop()
    finally:
        await producer.stop()
    assert not failures
    assert opened(events) == expected
    ids_per_finding: dict[tuple[str, str], set[str]] = {}
    for schema, event_id, payload in events:
        if schema == "Mismatch/1":
            ids_per_finding.setdefault((payload["operatorId"], payload["kind"]), set()).add(event_id)
    assert all(len(ids) == 1 for ids in ids_per_finding.values()), ids_per_finding
    resolved = [MismatchResolved.model_validate(p) for s, _, p in events if s == "MismatchResolved/1"]
    assert [(r.operator_id, r.kind.value) for r in resolved] == [(op_id("late"), "MISSING_IN_OPERATOR")]
    late_open = next(i for s, i, p in events if s == "Mismatch/1" and p["operatorId"] == op_id("late"))
    assert resolved[0].resolves == late_open
    amount = next(
        Mismatch.model_validate(p) for s, _, p in events if s == "Mismatch/1" and p["kind"] == "AMOUNT_MISMATCH"
    )
    assert amount.hub is not None and amount.operator is not None
    assert (amount.hub.amount_cents, amount.operator.amount_cents) == (100, 90)
