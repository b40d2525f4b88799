"""The continuous join end to end: a real broker, the faust worker inside the service's aiohttp app."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from hub_common.envelope import wrap
from hub_common.kafka import MISMATCHES, OPERATOR_TRANSACTIONS, TRANSACTIONS, KafkaConsumer, KafkaProducer
from hub_common.schemas import ErrorCode, Transaction, TransactionEvent, TxStatus, TxType
from hub_common.settings import KafkaSettings
from hub_reconciler.app import create_app
from hub_reconciler.models import Mismatch, MismatchKind, OperatorRecord, mismatch_event_id
from hub_reconciler.settings import ReconcilerSettings
from support.apps import serve
from support.roles import RoleDbSettings

WAIT_S = 60.0


def hub_event(ref_id: str, status: TxStatus, *, amount: int = 250, currency: str = "EUR") -> TransactionEvent:
    moment = datetime.now(UTC)
    tx = Transaction(
        transaction_id=f"00000000-0000-4000-8000-{abs(hash(ref_id)) % 10**12:012d}",
        ref_id=ref_id,
        type=TxType.BET,
        player_id="p-1",
        amount_cents=amount,
        currency=currency,
        status=status,
        created_at=moment,
        updated_at=moment,
    )
    code = None if status in (TxStatus.COMPLETED, TxStatus.PENDING) else ErrorCode.INSUFFICIENT_FUNDS
    return TransactionEvent(client_id="rgs-demo", error_code=code, transaction=tx)


def op_record(ref_id: str, *, amount: int = 250, currency: str = "EUR") -> OperatorRecord:
    return OperatorRecord(
        transaction_id=ref_id, amount_cents=amount, currency=currency, status="COMPLETED", player_id="p-1"
    )


async def read_mismatches(
    consumer: KafkaConsumer, expected: set[tuple[str, MismatchKind]]
) -> list[tuple[Mismatch, str]]:
    seen: list[tuple[Mismatch, str]] = []
    deadline = time.monotonic() + WAIT_S
    while not expected <= {(m.ref_id, m.kind) for m, _ in seen} and time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        seen.extend((r.envelope.payload_as(Mismatch), r.envelope.event_id) for r in batch.records)
    return seen


async def test_join_emits_each_mismatch_once(
    kafka_settings: KafkaSettings, role_db_settings: RoleDbSettings, tmp_path: Path
) -> None:
    settings = ReconcilerSettings(
        kafka=kafka_settings,
        database=role_db_settings("reconciler"),
        port=0,
        grace_window_s=2.0,
        sweep_interval_s=0.3,
        feed_enabled=False,
        daily_enabled=False,
        data_dir=tmp_path / "faust",
        report_dir=tmp_path / "reports",
    )
    failures: list[BaseException] = []
    producer = KafkaProducer(kafka_settings, client_id="test")
    await producer.start()
    try:
        async with serve(create_app(settings, on_fatal=failures.append)) as url:
            async with aiohttp.ClientSession() as http, http.get(f"{url}/ready") as ready:
                assert ready.status == 200

            async def hub(event: TransactionEvent) -> None:
                ref = event.transaction.ref_id
                await producer.send(TRANSACTIONS, wrap(event, correlation_id=f"c-{ref}"), key=ref)

            async def operator(record: OperatorRecord) -> None:
                ref = record.transaction_id
                await producer.send(OPERATOR_TRANSACTIONS, wrap(record, correlation_id="feed"), key=ref)

            await hub(hub_event("ok", TxStatus.PENDING))
            await hub(hub_event("ok", TxStatus.COMPLETED))
            await operator(op_record("ok"))
            await hub(hub_event("amount", TxStatus.COMPLETED, amount=250))
            await operator(op_record("amount", amount=300))
            await operator(op_record("amount", amount=300))  # the feed re-publishes overlapping windows
            await hub(hub_event("currency", TxStatus.COMPLETED, currency="GBP"))
            await operator(op_record("currency"))
            await hub(hub_event("status", TxStatus.REJECTED))
            await operator(op_record("status"))
            await hub(hub_event("rejected-alone", TxStatus.REJECTED))
            await hub(hub_event("no-operator", TxStatus.COMPLETED))
            await operator(op_record("no-hub"))
            await producer.send_raw(kafka_settings.topic(TRANSACTIONS), b"not json", key=b"poison")

            expected = {
                ("amount", MismatchKind.AMOUNT_MISMATCH),
                ("currency", MismatchKind.CURRENCY_MISMATCH),
                ("status", MismatchKind.STATUS_MISMATCH),
                ("no-operator", MismatchKind.MISSING_IN_OPERATOR),
                ("no-hub", MismatchKind.MISSING_IN_HUB),
            }
            consumer = KafkaConsumer(
                kafka_settings, [MISMATCHES], group_id="test-mismatches", dlq_producer=producer, client_id="test"
            )
            await consumer.start()
            try:
                seen = await read_mismatches(consumer, expected)
            finally:
                await consumer.stop()
            # Give the sweep time to (wrongly) repeat itself before the app stops: it must not.
            await asyncio.sleep(1.0)
            consumer = KafkaConsumer(
                kafka_settings, [MISMATCHES], group_id="test-recount", dlq_producer=producer, client_id="test"
            )
            await consumer.start()
            try:
                recount = await read_mismatches(consumer, expected)
            finally:
                await consumer.stop()
    finally:
        await producer.stop()

    assert failures == []
    pairs = [(m.ref_id, m.kind) for m, _ in recount]
    assert set(pairs) == expected
    assert len(pairs) == len(expected), "one mismatch per refId and kind"
    assert {(m.ref_id, m.kind) for m, _ in seen} == expected
    for mismatch, event_id in recount:
        assert event_id == mismatch_event_id(mismatch.ref_id, mismatch.kind)
    amount = next(m for m, _ in recount if m.kind is MismatchKind.AMOUNT_MISMATCH)
    assert amount.hub is not None and amount.hub.amount_cents == 250
    assert amount.operator is not None and amount.operator.amount_cents == 300
