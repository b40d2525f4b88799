"""POST /v1/transactions against real Kafka and PostgreSQL: admission, idempotency, conflicts, failures."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import asyncpg

from hub_common.operator import OperatorSettings
from hub_common.schemas import TxStatus
from hub_common.settings import KafkaSettings
from hub_gateway.app import ADMISSION_POOL, BACKLOG, POOL, PRODUCER
from hub_gateway.client import GatewayResponse
from hub_gateway.settings import GatewaySettings
from support.gateway_it import CLIENT_ID, read_commands, running_gateway
from support.waits import eventually


def bet(ref_id: str = "bet-1", amount: int = 250, **extra: Any) -> dict[str, Any]:
    return {"refId": ref_id, "type": "BET", "playerId": "p-1", "amountCents": amount, "currency": "EUR", **extra}


async def _count(database_url: str, sql: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_post_admits_and_enqueues_exactly_one_command(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    async with running_gateway(gateway_settings) as gw:
        response = await gw.client.post_transaction(
            bet(roundId="r-9", metadata={"seat": 2}), idempotency_key="key-1", headers={"X-Correlation-ID": "c-1"}
        )
    # No ledger runs: the budget ends with the transaction still PENDING.
    assert response.status == 202
    assert response.headers["Location"] == "/v1/transactions/bet-1"
    assert response.headers["X-Correlation-ID"] == "c-1"
    assert "Idempotent-Replayed" not in response.headers
    assert response.body["status"] == "PENDING"

    [record] = await read_commands(kafka_settings)
    assert record.key == "p-1"
    assert record.correlation_id == "c-1"
    assert record.headers["correlation-id"] == b"c-1"
    command = record.command
    assert (command.ref_id, command.client_id, command.idempotency_key) == ("bet-1", CLIENT_ID, "key-1")
    assert command.transaction_id == response.body["transactionId"]
    assert command.metadata == {"seat": 2}

    conn = await asyncpg.connect(database_url)
    try:
        tx = await conn.fetchrow("SELECT * FROM transactions")
        key = await conn.fetchrow("SELECT * FROM idempotency_keys")
        audit = await conn.fetchrow("SELECT * FROM audit_log")
    finally:
        await conn.close()
    assert tx is not None and key is not None and audit is not None
    assert (tx["status"], tx["client_id"], tx["correlation_id"]) == ("PENDING", CLIENT_ID, "c-1")
    assert tx["request_hash"] == command.request_hash == key["request_hash"]
    assert (key["key"], key["scope"], key["status"]) == ("key-1", CLIENT_ID, "PROCESSING")
    assert key["transaction_id"] == tx["id"]
    assert key["expires_at"] > tx["created_at"]
    assert (audit["entity_id"], audit["action"]) == (str(tx["id"]), "ADMITTED")


async def test_identical_retries_replay_without_a_second_command(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings
) -> None:
    async with running_gateway(gateway_settings) as gw:
        first = await gw.client.post_transaction(bet(), idempotency_key="key-1")
        same_key = await gw.client.post_transaction(bet(), idempotency_key="key-1")
        # Field order and explicit defaults do not change the request.
        reordered = dict(reversed(list(bet(roundClosed=False).items())))
        same_ref = await gw.client.post_transaction(reordered, idempotency_key="key-2")
        fetched = await gw.client.get_transaction("bet-1")
    assert first.status == 202
    for replay in (same_key, same_ref):
        assert replay.status == 202
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert replay.body["transactionId"] == first.body["transactionId"]
    assert fetched.status == 200
    assert fetched.body["transactionId"] == first.body["transactionId"]
    assert len(await read_commands(kafka_settings)) == 1


async def test_conflicts(gateway_settings: GatewaySettings, kafka_settings: KafkaSettings) -> None:
    async with running_gateway(gateway_settings) as gw:
        assert (await gw.client.post_transaction(bet(), idempotency_key="key-1")).status == 202
        key_reused = await gw.client.post_transaction(bet("bet-2"), idempotency_key="key-1")
        ref_reused = await gw.client.post_transaction(bet(amount=999), idempotency_key="key-2")
        other_client = await gw.other.post_transaction(bet(), idempotency_key="key-1")
        unknown = await gw.other.get_transaction("bet-1")
    assert (key_reused.status, key_reused.error_code) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert (ref_reused.status, ref_reused.error_code) == (409, "DUPLICATE_REF_ID")
    # refIds are one id space at the operator: another client cannot take one, nor see its transaction.
    assert (other_client.status, other_client.error_code) == (409, "DUPLICATE_REF_ID")
    assert (unknown.status, unknown.error_code) == (404, "TRANSACTION_NOT_FOUND")
    assert len(await read_commands(kafka_settings)) == 1


def _classify(response: GatewayResponse) -> str:
    if response.status == 202 and "Idempotent-Replayed" not in response.headers:
        return "admitted"
    if response.headers.get("Idempotent-Replayed") == "true":
        return "replayed"
    assert response.status == 409, response.body
    if response.error_code == "REQUEST_IN_PROGRESS":
        assert response.headers["Retry-After"]
    return str(response.error_code)


async def test_50_concurrent_identical_requests_admit_once(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    async with running_gateway(gateway_settings) as gw:
        responses = await asyncio.gather(
            *(gw.client.post_transaction(bet(), idempotency_key="key-1") for _ in range(50))
        )
    outcomes = Counter(_classify(r) for r in responses)
    assert outcomes["admitted"] == 1
    assert set(outcomes) <= {"admitted", "replayed", "REQUEST_IN_PROGRESS"}
    assert len({r.body["transactionId"] for r in responses if r.status == 202}) == 1
    assert len(await read_commands(kafka_settings)) == 1
    assert await _count(database_url, "SELECT count(*) FROM transactions") == 1


async def test_50_concurrent_bodies_under_one_key_admit_one(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    async with running_gateway(gateway_settings) as gw:
        responses = await asyncio.gather(
            *(gw.client.post_transaction(bet(f"bet-{i}"), idempotency_key="key-1") for i in range(50))
        )
    outcomes = Counter(_classify(r) for r in responses)
    assert outcomes["admitted"] == 1
    assert set(outcomes) <= {"admitted", "IDEMPOTENCY_KEY_REUSED", "REQUEST_IN_PROGRESS"}
    assert len(await read_commands(kafka_settings)) == 1
    assert await _count(database_url, "SELECT count(*) FROM transactions") == 1
    assert await _count(database_url, "SELECT count(*) FROM idempotency_keys") == 1


async def test_produce_failure_rolls_back_and_answers_503(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    async with running_gateway(gateway_settings) as gw:
        await gw.app[PRODUCER].stop()
        response = await gw.client.post_transaction(bet(), idempotency_key="key-1")
    assert (response.status, response.error_code) == (503, "SERVICE_UNAVAILABLE")
    assert response.body["error"]["retryable"] is True
    assert await read_commands(kafka_settings) == []
    for table in ("transactions", "idempotency_keys", "audit_log"):
        assert await _count(database_url, f"SELECT count(*) FROM {table}") == 0


async def test_database_down_answers_503(gateway_settings: GatewaySettings, kafka_settings: KafkaSettings) -> None:
    async with running_gateway(gateway_settings) as gw:
        await gw.app[ADMISSION_POOL].close()
        await gw.app[POOL].close()
        post = await gw.client.post_transaction(bet(), idempotency_key="key-1")
        get = await gw.client.get_transaction("bet-1")
    assert (post.status, post.error_code) == (503, "SERVICE_UNAVAILABLE")
    assert (get.status, get.error_code) == (503, "SERVICE_UNAVAILABLE")
    assert await read_commands(kafka_settings) == []


async def test_backlog_over_its_bound_is_429_but_replays_still_answer(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings
) -> None:
    # The operator allows 6 calls a minute: one transaction over the bound drains in 10 s.
    operator = OperatorSettings(rate_per_minute=6)
    settings = gateway_settings.model_copy(update={"max_backlog": 1, "outcome_budget_s": 0.0, "operator": operator})
    async with running_gateway(settings) as gw:
        for i in range(2):
            assert (await gw.client.post_transaction(bet(f"bet-{i}"), idempotency_key=f"k-{i}")).status == 202
        await eventually(lambda: gw.app[BACKLOG].current >= 2, what="the backlog guard to count both")
        limited = await gw.client.post_transaction(bet("bet-9"), idempotency_key="k-9")
        replay = await gw.client.post_transaction(bet("bet-0"), idempotency_key="k-0")
    assert (limited.status, limited.error_code) == (429, "RATE_LIMITED")
    assert limited.headers["Retry-After"] == "10"
    assert replay.status == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(await read_commands(kafka_settings)) == 2


async def test_ops_routes(gateway_settings: GatewaySettings) -> None:
    async with running_gateway(gateway_settings) as gw:
        session = gw.client._session
        async with session.get(gw.url + "/health") as response:
            health = await response.json()
        async with session.get(gw.url + "/ready") as response:
            ready = response.status
        assert (await gw.client.post_transaction(bet(), idempotency_key="k")).status == 202
        async with session.get(gw.url + "/metrics") as response:
            metrics = await response.text()
    assert (health["kafka"], health["database"], health["status"]) == ("connected", "connected", "ok")
    assert ready == 200
    assert "gateway_admissions_total" in metrics
    assert TxStatus.PENDING.value  # keeps the import honest for readers: rows start PENDING
