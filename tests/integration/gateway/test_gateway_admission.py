"""POST /v1/transactions against real Kafka and PostgreSQL: admission, idempotency, conflicts, failures."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from typing import Any

import asyncpg
from prometheus_client import REGISTRY

from hub_common.operator import OperatorSettings, operator_id
from hub_common.schemas import TxStatus, TxType
from hub_common.settings import KafkaSettings
from hub_gateway.app import ADMISSION_POOL, CONTROL, POOL, PRODUCER
from hub_gateway.client import GatewayResponse
from hub_gateway.settings import GatewaySettings
from support.gateway_it import CLIENT_ID, OTHER_CLIENT, read_commands, running_gateway
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
    # The command names the operator id stored on the row: a row re-created from it gets the id the operator saw.
    assert tx["operator_id"] == command.operator_id == f"{CLIENT_ID}:bet-1"
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


async def test_conflicts_are_per_client(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    async with running_gateway(gateway_settings) as gw:
        first = await gw.client.post_transaction(bet(), idempotency_key="key-1")
        key_reused = await gw.client.post_transaction(bet("bet-2"), idempotency_key="key-1")
        ref_reused = await gw.client.post_transaction(bet(amount=999), idempotency_key="key-2")
        unknown = await gw.other.get_transaction("bet-1")
        # refIds and keys are per client: the other client's bet-1 (another body, the same key) is its own.
        other_client = await gw.other.post_transaction(bet(amount=999), idempotency_key="key-1")
        other_replay = await gw.other.post_transaction(bet(amount=999), idempotency_key="key-1")
        mine_again = await gw.client.get_transaction("bet-1")
    assert first.status == 202
    assert (key_reused.status, key_reused.error_code) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert (ref_reused.status, ref_reused.error_code) == (409, "DUPLICATE_REF_ID")
    # Before it had one, the other client's bet-1 was unknown to it: another client's transaction is not shown.
    assert (unknown.status, unknown.error_code) == (404, "TRANSACTION_NOT_FOUND")
    assert other_client.status == 202
    assert other_client.body["transactionId"] != first.body["transactionId"]
    assert other_replay.headers["Idempotent-Replayed"] == "true"
    assert other_replay.body["transactionId"] == other_client.body["transactionId"]
    assert (mine_again.body["transactionId"], mine_again.body["amountCents"]) == (first.body["transactionId"], 250)
    commands = await read_commands(kafka_settings)
    assert sorted((r.command.client_id, r.command.ref_id) for r in commands) == [
        (CLIENT_ID, "bet-1"),
        (OTHER_CLIENT, "bet-1"),
    ]
    conn = await asyncpg.connect(database_url)
    try:
        stored = {r["client_id"]: r["operator_id"] for r in await conn.fetch("SELECT * FROM transactions")}
    finally:
        await conn.close()
    # One id space at the operator: each client's refId is sent under its own operator id.
    assert stored == {CLIENT_ID: operator_id(CLIENT_ID, "bet-1"), OTHER_CLIENT: operator_id(OTHER_CLIENT, "bet-1")}


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
        assert await _count(database_url, f"SELECT count(*) FROM {table}") == 0  # noqa: S608 - table names from a literal tuple


async def test_database_down_answers_503(gateway_settings: GatewaySettings, kafka_settings: KafkaSettings) -> None:
    async with running_gateway(gateway_settings) as gw:
        await gw.app[ADMISSION_POOL].close()
        await gw.app[POOL].close()
        post = await gw.client.post_transaction(bet(), idempotency_key="key-1")
        get = await gw.client.get_transaction("bet-1")
    assert (post.status, post.error_code) == (503, "SERVICE_UNAVAILABLE")
    assert (get.status, get.error_code) == (503, "SERVICE_UNAVAILABLE")
    assert await read_commands(kafka_settings) == []


async def test_bets_past_their_useful_life_are_429_while_credits_and_replays_are_answered(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings
) -> None:
    # 6 operator calls a minute (window 60 s + 1 s margin) and no ledger: 6 BETs fit in a 30 s useful life.
    operator = OperatorSettings(rate_per_minute=6)
    update = {"outcome_budget_s": 0.0, "operator": operator, "bet_useful_life_s": 30.0, "client_bet_share": 1.0}
    # One read at start, then only this replica's own admissions count (no read racing the sequence below).
    update["forecast_refresh_s"] = 3600.0
    async with running_gateway(gateway_settings.model_copy(update=update)) as gw:
        admitted = [await gw.client.post_transaction(bet(f"bet-{i}"), idempotency_key=f"k-{i}") for i in range(6)]
        limited = await gw.client.post_transaction(bet("bet-9"), idempotency_key="k-9")
        win = await gw.client.post_transaction(bet("win-1", type="WIN"), idempotency_key="k-w")
        replay = await gw.client.post_transaction(bet("bet-0"), idempotency_key="k-0")
    assert [r.status for r in admitted] == [202] * 6
    # The 6th BET goes with the first free calls; the 5th of them after the 4 ahead of it.
    assert [r.body["predictedWaitS"] for r in admitted] == [0.0] * 6
    assert (limited.status, limited.error_code) == (429, "RATE_LIMITED")
    # The 7th call is possible once the first leaves the window (61 s): 31 s past the 30 s life.
    assert limited.headers["Retry-After"] == "31"
    # Admitted all the same: the 6 BETs on their way take the free calls, the WIN the next one (61 s).
    assert (win.status, win.headers["X-Predicted-Wait"]) == (202, "61.0")
    assert replay.status == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert len(await read_commands(kafka_settings)) == 7


async def test_one_client_cannot_take_every_bet_place(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings
) -> None:
    operator = OperatorSettings(rate_per_minute=8)
    update = {"outcome_budget_s": 0.0, "operator": operator, "client_bet_share": 0.5, "client_bet_floor": 1}
    update["forecast_refresh_s"] = 3600.0
    async with running_gateway(gateway_settings.model_copy(update=update)) as gw:
        greedy = [await gw.client.post_transaction(bet(f"a-{i}"), idempotency_key=f"a-{i}") for i in range(5)]
        other = [await gw.other.post_transaction(bet(f"b-{i}"), idempotency_key=f"b-{i}") for i in range(4)]
    # 8 BETs fit in the useful life: each client may hold 4 of them.
    assert [r.status for r in greedy] == [202] * 4 + [429]
    assert greedy[4].error_code == "RATE_LIMITED" and int(greedy[4].headers["Retry-After"]) >= 1
    assert [r.status for r in other] == [202] * 4
    assert len(await read_commands(kafka_settings)) == 8


def _answered_at_once() -> float:
    return REGISTRY.get_sample_value("gateway_accepted_at_once_total") or 0.0


async def test_an_outcome_not_expected_within_the_budget_is_answered_at_once(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings
) -> None:
    # The operator asked for a pause of 50 s: nothing can reach it within a 30 s outcome budget.
    operator = OperatorSettings(rate_per_minute=60)
    update = {"outcome_budget_s": 30.0, "operator": operator}
    async with running_gateway(gateway_settings.model_copy(update=update)) as gw:
        conn = await asyncpg.connect(gateway_settings.database.url.get_secret_value())
        try:
            await conn.execute("UPDATE operator_budget SET paused_until = clock_timestamp() + interval '50 seconds'")
        finally:
            await conn.close()
        await eventually(lambda: gw.app[CONTROL].forecast(TxType.WIN).wait_s > 40, what="the pause in the forecast")
        before = _answered_at_once()
        # Held for the budget, this would take 30 s: the guard fails the test before.
        async with asyncio.timeout(15):
            win = await gw.client.post_transaction(bet("win-1", type="WIN"), idempotency_key="k-w")
    assert _answered_at_once() == before + 1
    assert win.status == 202
    wait = float(win.headers["X-Predicted-Wait"])
    assert 40 < wait <= 50 and win.body["predictedWaitS"] == wait
    assert int(win.headers["Retry-After"]) == math.ceil(wait)
    assert len(await read_commands(kafka_settings)) == 1


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
