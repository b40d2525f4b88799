"""Helpers for gateway integration tests: run the real app, read hub.commands, play the ledger's part."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from hub_common.envelope import decode, wrap
from hub_common.kafka import COMMANDS, TRANSACTIONS, KafkaProducer
from hub_common.schemas import ErrorCode, TransactionCommand, TransactionEvent, TxStatus
from hub_common.settings import KafkaSettings
from hub_gateway.app import create_app
from hub_gateway.client import GatewayClient
from hub_gateway.settings import GatewaySettings
from hub_gateway.store import stored_from_row
from support.apps import serve
from support.waits import eventually

CLIENT_ID = "rgs-a"
SECRET = SecretStr("secret-a")
OTHER_CLIENT = "rgs-b"
OTHER_SECRET = SecretStr("secret-b")


@dataclass(frozen=True)
class CommandRecord:
    key: str | None
    headers: dict[str, bytes]
    correlation_id: str
    command: TransactionCommand


@dataclass
class Running:
    app: Any
    url: str
    client: GatewayClient
    other: GatewayClient


@asynccontextmanager
async def running_gateway(settings: GatewaySettings) -> AsyncIterator[Running]:
    app = create_app(settings)
    async with (
        serve(app) as url,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
    ):
        yield Running(
            app,
            url,
            GatewayClient(session, url, CLIENT_ID, SECRET),
            GatewayClient(session, url, OTHER_CLIENT, OTHER_SECRET),
        )


ADMISSION_TABLES = ("transactions", "idempotency_keys", "audit_log")


async def table_counts(database_url: str) -> dict[str, int]:
    """Rows in each table an admission writes: all of them or none."""
    conn = await asyncpg.connect(database_url)
    try:
        return {table: int(await conn.fetchval(f"SELECT count(*) FROM {table}")) for table in ADMISSION_TABLES}  # noqa: S608 - table names from a constant tuple
    finally:
        await conn.close()


async def read_topic(kafka: KafkaSettings, topic: str) -> list[Any]:
    """Every record of `topic` up to its current end (produce is acked before the gateway answers)."""
    consumer = AIOKafkaConsumer(
        kafka.topic(topic),
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        # The assignment follows the first metadata answer.
        await eventually(lambda: bool(consumer.assignment()), step_s=0.1, what="a partition assignment")
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def read_commands(kafka: KafkaSettings) -> list[CommandRecord]:
    result = []
    for record in await read_topic(kafka, COMMANDS):
        envelope = decode(record.value)
        result.append(
            CommandRecord(
                key=record.key.decode() if record.key is not None else None,
                headers=dict(record.headers),
                correlation_id=envelope.correlation_id,
                command=envelope.payload_as(TransactionCommand),
            )
        )
    return result


Decision = Callable[[TransactionCommand], tuple[TxStatus, ErrorCode | None, int | None]]


@asynccontextmanager
async def fake_ledger(kafka: KafkaSettings, database_url: str, decide: Decision) -> AsyncIterator[None]:
    """Plays the ledger: each command's row gets its final state and a TransactionEvent goes out."""
    consumer = AIOKafkaConsumer(
        kafka.topic(COMMANDS),
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = KafkaProducer(kafka, client_id="fake-ledger")
    conn = await asyncpg.connect(database_url)
    await consumer.start()
    await producer.start()

    async def loop() -> None:
        while True:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                for record in batch:
                    envelope = decode(record.value)
                    await settle(envelope.payload_as(TransactionCommand), envelope.correlation_id)

    async def settle(command: TransactionCommand, correlation_id: str) -> None:
        status, code, balance = decide(command)
        row = None
        # The gateway produces before it commits, so the row can lag its command by a moment (bounded).
        for _ in range(200):
            row = await conn.fetchrow(
                """UPDATE transactions t SET status = $2, error_code = $3, balance_cents = $4, updated_at = now(),
                       completed_at = now(), reason = $5, operator_transaction_id = $6
                   WHERE id = $1::uuid RETURNING t.*""",
                command.transaction_id,
                status.value,
                code.value if code else None,
                balance,
                f"fake ledger: {code.value}" if code else None,
                f"op-{command.ref_id}" if status is TxStatus.COMPLETED else None,
            )
            if row is not None:
                break
            await asyncio.sleep(0.01)
        assert row is not None
        event = TransactionEvent(
            client_id=command.client_id, error_code=code, transaction=stored_from_row(row).transaction
        )
        await producer.send(TRANSACTIONS, wrap(event, correlation_id=correlation_id), key=command.ref_id)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        try:
            with suppress(asyncio.CancelledError):
                await task
        finally:
            await consumer.stop()
            await producer.stop()
            await conn.close()
