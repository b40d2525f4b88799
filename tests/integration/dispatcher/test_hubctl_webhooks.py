"""hubctl `webhooks` and `dlq` against a running dispatcher, the real broker and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from pydantic import SecretStr

from hub_common.envelope import wrap
from hub_common.kafka import TRANSACTIONS, KafkaProducer
from hub_common.schemas import Transaction, TransactionEvent, TxStatus, TxType
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_dispatcher.app import create_app
from hub_dispatcher.settings import DispatcherSettings, EndpointSettings
from hubctl.context import HubctlSettings
from support.apps import serve
from support.dispatcher_it import run_hubctl
from support.roles import RoleDbSettings
from support.waits import eventually

CLIENT = "rgs-demo"


class Rgs:
    """Refuses every webhook with 400 until `accept` is set; records (eventId, X-Replay) pairs."""

    def __init__(self) -> None:
        self.accept = False
        self.seen: list[tuple[str, str | None]] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        self.seen.append((body["eventId"], request.headers.get("X-Replay")))
        return web.Response(status=200 if self.accept else 400)


@asynccontextmanager
async def stack(kafka_settings: KafkaSettings, database: DatabaseSettings, rgs: Rgs) -> AsyncIterator[None]:
    app = web.Application()
    app.router.add_post("/webhooks", rgs.handle)
    async with serve(app) as base:
        settings = DispatcherSettings(
            kafka=kafka_settings,
            database=database,
            endpoints={CLIENT: EndpointSettings(url=base + "/webhooks", secrets=[SecretStr("s")])},
            retry_schedule_ms=[50],
            sweep_interval_s=0.2,
        )
        async with serve(create_app(settings)):
            yield


async def until(db: asyncpg.Connection, sql: str, expected: object, *args: object) -> None:
    async def holds() -> bool:
        return bool(await db.fetchval(sql, *args) == expected)

    await eventually(holds, step_s=0.1, what=f"{sql!r} == {expected!r}")


def completed(player: str) -> tuple[str, bytes]:

    now = datetime.now(UTC)
    tx = Transaction(
        transaction_id=str(uuid.uuid4()),
        ref_id=f"bet-{uuid.uuid4().hex[:8]}",
        type=TxType.BET,
        player_id=player,
        amount_cents=100,
        currency="EUR",
        status=TxStatus.COMPLETED,
        created_at=now,
        updated_at=now,
        completed_at=now,
    )
    envelope = wrap(TransactionEvent(client_id=CLIENT, transaction=tx), correlation_id="c-" + tx.ref_id)
    return envelope.event_id, envelope.encode()


@pytest.mark.usefixtures("database_url")
async def test_list_show_replay_and_redrive_dead_letters(
    kafka_settings: KafkaSettings, db_settings: DatabaseSettings, role_db_settings: RoleDbSettings
) -> None:
    rgs = Rgs()
    ctl = HubctlSettings(kafka=kafka_settings, database=role_db_settings("hubctl"), hubctl_actor="hubctl:test")

    async def run(*argv: str) -> Any:
        return await run_hubctl(ctl, *argv)

    db = await asyncpg.connect(db_settings.url.get_secret_value())
    producer = KafkaProducer(kafka_settings, client_id="test-ledger")
    try:
        async with stack(kafka_settings, role_db_settings("webhook-dispatcher"), rgs):
            await producer.start()
            alice, alice_raw = completed("p-alice")
            bob, bob_raw = completed("p-bob")
            for raw in (alice_raw, bob_raw):
                await producer.send_raw(kafka_settings.topic(TRANSACTIONS), raw, key=b"k")
            dead = "SELECT count(*) FROM webhook_outbox WHERE status = 'DEAD_LETTER'"
            await until(db, dead, 2)

            failed = await run("webhooks", "failed")
            assert {r["id"] for r in failed} == {alice, bob}
            assert {r["last_error"] for r in failed} == {"non-retryable HTTP 400"}

            listed = []

            async def listed_alice() -> bool:  # the dead letters reach the topic just after the rows are updated
                nonlocal listed
                listed = await run("dlq", "list", "--player", "p-alice")
                return bool(listed)

            await eventually(listed_alice, step_s=0.1, what="alice's dead letter listed")
            assert [r["eventId"] for r in listed] == [alice]
            shown = await run("dlq", "show", alice)
            assert [a["status"] for a in shown["attempts"]] == [400]
            dry = await run("dlq", "replay", "--player", "p-alice", "--dry-run")
            assert [(r["eventId"], r["playerId"], r["result"]) for r in dry] == [(alice, "p-alice", "would replay")]
            assert await db.fetchval(dead) == 2

            rgs.accept = True
            replayed = await run("dlq", "replay", "--id", alice, "--rate", "100", "--yes")
            assert [(r["eventId"], r["result"]) for r in replayed] == [(alice, "replayed")]
            status = "SELECT status FROM webhook_outbox WHERE id = $1::uuid"
            await until(db, status, "DELIVERED", alice)
            again = await run("dlq", "replay", "--id", alice, "--yes")
            assert [(r["eventId"], r["result"]) for r in again] == [(alice, "skipped: DELIVERED")]

            redriven = await run("webhooks", "redrive", "--id", bob, "--yes")
            assert [(r["id"], r["result"]) for r in redriven] == [(bob, "reset")]
            await until(db, status, "DELIVERED", bob)
            row = await run("webhooks", "show", bob)
            assert [a["replay"] for a in row["attempts"]] == [False, True]
    finally:
        await producer.stop()
        await db.close()

    assert (alice, "true") in rgs.seen
    assert (bob, "true") in rgs.seen
    audit = await _audit(db_settings)
    assert audit == [(alice, "dlq.replay", "hubctl:test"), (bob, "webhook.redrive", "hubctl:test")]


async def _audit(db_settings: DatabaseSettings) -> list[tuple[str, str, str]]:
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        rows = await conn.fetch(
            "SELECT entity_id, action, actor FROM audit_log WHERE entity = 'webhook_outbox' ORDER BY id"
        )
    finally:
        await conn.close()
    return [(r["entity_id"], r["action"], r["actor"]) for r in rows]
