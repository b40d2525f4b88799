"""Helpers of the ledger's integration tests: admit commands as the gateway does, watch hub.transactions."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from pydantic import SecretStr

from hub_common.envelope import wrap
from hub_common.kafka import COMMANDS, TRANSACTIONS, KafkaConsumer, KafkaProducer
from hub_common.operator import OperatorSettings, operator_id
from hub_common.schemas import TransactionCommand, TransactionEvent, TxStatus, TxType
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_ledger.settings import LedgerSettings
from mock_operator.admin_client import OperatorAdminClient

OPERATOR_SECRET = SecretStr("it-operator-secret")
CLIENT_ID = "rgs-demo"


def op_id(ref_id: str, client_id: str = CLIENT_ID) -> str:
    """The id the operator knows the client's `ref_id` by (hub_common.operator.ids)."""
    return operator_id(client_id, ref_id)


def ledger_settings(
    kafka: KafkaSettings, database: DatabaseSettings, operator_url: str, **overrides: Any
) -> LedgerSettings:
    operator = OperatorSettings(
        url=operator_url,
        secret=OPERATOR_SECRET,
        rate_per_minute=overrides.pop("rate_per_minute", 1000),
        window_s=overrides.pop("window_s", 60.0),
        safety_margin_s=overrides.pop("safety_margin_s", 1.0),
        timeout_s=overrides.pop("operator_timeout_s", 2.0),
        budget_poll_s=0.1,
        breaker_reset_s=0.5,
    )
    base: dict[str, Any] = {
        "port": 0,
        # One group per test (the prefix is unique per test): a group shared with other tests' ledgers on the
        # cluster would rebalance with them. Ledgers of one test share it, as replicas do.
        "group_id": f"{kafka.topic_prefix}hub-ledger",
        "kafka": kafka,
        "database": database,
        "operator": operator,
        "commit_interval_s": 0.2,
        "outbox_poll_s": 0.2,
        "retry_initial_s": 0.05,
        "retry_max_s": 0.2,
        "sweep_interval_s": 0.5,
        "compensation_interval_s": 0.2,
        # Above the operator timeout plus the margin a call needs; short, so an expired lease is quick to test.
        "lease_ttl_s": 6.0,
    }
    base.update(overrides)
    return LedgerSettings(**base)


def command(
    ref_id: str,
    tx_type: TxType,
    player_id: str,
    amount_cents: int,
    *,
    round_id: str | None = "r-1",
    original_ref_id: str | None = None,
    currency: str = "EUR",
    client_id: str = CLIENT_ID,
    send_by: datetime | None = None,
) -> TransactionCommand:
    body = {
        "refId": ref_id,
        "type": tx_type.value,
        "playerId": player_id,
        "amountCents": amount_cents,
        "currency": currency,
        "roundId": round_id,
        "originalRefId": original_ref_id,
    }
    return TransactionCommand(
        transaction_id=str(uuid.uuid4()),
        client_id=client_id,
        idempotency_key=f"key-{ref_id}",
        request_hash=hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest(),
        ref_id=ref_id,
        type=tx_type,
        player_id=player_id,
        amount_cents=amount_cents,
        currency=currency,
        round_id=round_id,
        original_ref_id=original_ref_id,
        admitted_at=datetime.now(UTC),
        send_by=send_by,
        operator_id=operator_id(client_id, ref_id),
    )


async def insert_admitted(pool: asyncpg.Pool, cmd: TransactionCommand) -> None:
    """What the gateway's admission commits: the PENDING row and the PROCESSING key."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            """INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, round_id,
                   original_ref_id, request_hash, status, correlation_id, operator_id, send_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'PENDING', $11, $12, $13)""",
            uuid.UUID(cmd.transaction_id),
            cmd.client_id,
            cmd.ref_id,
            cmd.type.value,
            cmd.player_id,
            cmd.amount_cents,
            cmd.currency,
            cmd.round_id,
            cmd.original_ref_id,
            cmd.request_hash,
            f"corr-{cmd.ref_id}",
            operator_id(cmd.client_id, cmd.ref_id),
            cmd.send_by,
        )
        await conn.execute(
            """INSERT INTO idempotency_keys (id, key, scope, request_hash, status, transaction_id, expires_at)
               VALUES ($1, $2, $3, $4, 'PROCESSING', $5, $6)""",
            uuid.uuid4(),
            cmd.idempotency_key,
            cmd.client_id,
            cmd.request_hash,
            uuid.UUID(cmd.transaction_id),
            datetime.now(UTC) + timedelta(hours=24),
        )


@dataclass
class EventLog:
    """Every TransactionEvent seen on hub.transactions, with its Kafka key."""

    events: list[tuple[str | None, TransactionEvent]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def of(self, ref_id: str) -> list[TxStatus]:
        return [e.transaction.status for key, e in self.events if e.transaction.ref_id == ref_id]

    async def wait_final(self, ref_id: str, timeout_s: float = 30) -> TransactionEvent:
        async def final() -> TransactionEvent:
            while True:
                for _, event in self.events:
                    if event.transaction.ref_id == ref_id and event.transaction.status.is_final:
                        return event
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(final(), timeout_s)


@asynccontextmanager
async def watch_transactions(kafka: KafkaSettings, producer: KafkaProducer) -> AsyncIterator[EventLog]:
    log = EventLog()
    consumer = KafkaConsumer(kafka, [TRANSACTIONS], group_id=None, dlq_producer=producer, client_id="it-watch")
    await consumer.start()

    async def pump() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            for record in batch.records:
                log.events.append((record.key, record.envelope.payload_as(TransactionEvent)))
            if batch.records:
                log.changed.set()

    task = asyncio.create_task(pump())
    try:
        yield log
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


async def send(producer: KafkaProducer, cmd: TransactionCommand) -> None:
    await producer.send(COMMANDS, wrap(cmd, correlation_id=f"corr-{cmd.ref_id}"), key=cmd.player_id)


@dataclass
class Harness:
    pool: asyncpg.Pool
    producer: KafkaProducer
    events: EventLog
    operator: OperatorAdminClient

    async def admit(self, cmd: TransactionCommand, *, row: bool = True) -> None:
        if row:
            await insert_admitted(self.pool, cmd)
        await send(self.producer, cmd)

    async def row(self, ref_id: str) -> asyncpg.Record:
        record = await self.pool.fetchrow("SELECT * FROM transactions WHERE ref_id = $1", ref_id)
        assert record is not None
        return record

    async def settle(self, cmd: TransactionCommand, *, row: bool = True) -> TransactionEvent:
        await self.admit(cmd, row=row)
        return await self.events.wait_final(cmd.ref_id)
