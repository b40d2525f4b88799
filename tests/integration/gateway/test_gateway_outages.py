"""Kafka or PostgreSQL really taken away: 503 SERVICE_UNAVAILABLE, and nothing half-admitted.

"Nothing half-admitted": no transactions / idempotency_keys / audit_log row and no command on hub.commands
for the refused request, and the gateway serves again once the dependency is back.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest

from hub_common.settings import KafkaSettings
from hub_devstack.kafka import LocalKafka
from hub_gateway.app import PRODUCER
from hub_gateway.client import GatewayResponse
from hub_gateway.settings import GatewaySettings
from support.gateway_it import Running, read_commands, running_gateway, table_counts


def bet(ref_id: str) -> dict[str, Any]:
    return {"refId": ref_id, "type": "BET", "playerId": "p-1", "amountCents": 250, "currency": "EUR"}


def _assert_unavailable(response: GatewayResponse) -> None:
    assert (response.status, response.error_code) == (503, "SERVICE_UNAVAILABLE"), response.body
    assert response.body["error"]["retryable"] is True
    assert int(response.headers["Retry-After"]) >= 1
    assert response.body["error"]["correlationId"] == response.headers["X-Correlation-ID"]


async def _health(gw: Running) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(gw.url + "/health") as response:
        body: dict[str, Any] = await response.json()
        return body


async def _admin(postgres_admin_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(postgres_admin_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _terminate(database: str) -> str:
    return f"""SELECT pg_terminate_backend(pid) FROM pg_stat_activity
               WHERE datname = '{database}' AND pid <> pg_backend_pid()"""  # noqa: S608 - the test's own generated database name


async def test_kafka_stopped_answers_503_and_admits_nothing(
    private_kafka: LocalKafka, gateway_settings: GatewaySettings, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    kafka = KafkaSettings(
        bootstrap_servers=private_kafka.bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=1
    )
    settings = gateway_settings.model_copy(update={"kafka": kafka, "produce_timeout_s": 2.5})
    async with running_gateway(settings) as gw:
        admitted = await gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1")
        assert admitted.status == 202
        assert [c.command.ref_id for c in await read_commands(kafka)] == ["bet-1"]

        await asyncio.to_thread(private_kafka.stop)
        refused = await gw.client.post_transaction(bet("bet-2"), idempotency_key="k-2")
        # PostgreSQL still answers: the admitted transaction stays readable, the refused one left no trace.
        fetched = await gw.client.get_transaction("bet-1")
        missing = await gw.client.get_transaction("bet-2")
        health = await _health(gw)
        # Nothing stays buffered to reach a broker that comes back: stopping the producer (which flushes)
        # returns at once. An idempotent aiokafka producer would retry the refused command forever here.
        await asyncio.wait_for(gw.app[PRODUCER].stop(), timeout=10)

    _assert_unavailable(refused)
    # aiokafka itself gave the record up (within the derived request timeout), not the gateway's last resort.
    assert not [r for r in caplog.records if r.name == "hub_gateway.service" and r.levelname == "ERROR"]
    assert (fetched.status, missing.status) == (200, 404)
    assert (health["kafka"], health["database"]) == ("disconnected", "connected")
    assert await table_counts(database_url) == {"transactions": 1, "idempotency_keys": 1, "audit_log": 1}


async def test_postgres_refusing_connections_answers_503_and_recovers(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str, postgres_admin_url: str
) -> None:
    database = urlsplit(database_url).path.lstrip("/")
    async with running_gateway(gateway_settings) as gw:
        assert (await gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1")).status == 202
        await _admin(postgres_admin_url, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false', _terminate(database))
        try:
            refused = await gw.client.post_transaction(bet("bet-2"), idempotency_key="k-2")
            lookup = await gw.client.get_transaction("bet-1")
            health = await _health(gw)
        finally:
            await _admin(postgres_admin_url, f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        recovered = await gw.client.post_transaction(bet("bet-3"), idempotency_key="k-3")

    _assert_unavailable(refused)
    _assert_unavailable(lookup)
    assert health["database"] == "disconnected"
    assert recovered.status == 202
    assert await table_counts(database_url) == {"transactions": 2, "idempotency_keys": 2, "audit_log": 2}
    assert sorted(c.command.ref_id for c in await read_commands(kafka_settings)) == ["bet-1", "bet-3"]


@pytest.mark.parametrize(
    "setting",
    [
        # A failover that left the gateway on a read-only standby: INSERT fails with ReadOnlySQLTransaction.
        "default_transaction_read_only = on",
        # A session that cannot see the schema (a botched migration or role change): UndefinedTable.
        "search_path = nowhere",
    ],
)
async def test_any_postgres_error_during_admission_is_503(
    gateway_settings: GatewaySettings,
    kafka_settings: KafkaSettings,
    database_url: str,
    postgres_admin_url: str,
    setting: str,
) -> None:
    database = urlsplit(database_url).path.lstrip("/")
    async with running_gateway(gateway_settings) as gw:
        await _admin(postgres_admin_url, f'ALTER DATABASE "{database}" SET {setting}', _terminate(database))
        try:
            responses = [await gw.client.post_transaction(bet(f"bet-{i}"), idempotency_key=f"k-{i}") for i in range(3)]
        finally:
            await _admin(postgres_admin_url, f'ALTER DATABASE "{database}" RESET ALL', _terminate(database))
    for response in responses:
        _assert_unavailable(response)
    assert await table_counts(database_url) == {"transactions": 0, "idempotency_keys": 0, "audit_log": 0}
    assert await read_commands(kafka_settings) == []
