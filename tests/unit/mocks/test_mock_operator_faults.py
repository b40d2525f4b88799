"""Injected faults and the admin API of the mock operator, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from hub_common.schemas import TxType
from mock_operator.admin_client import AdminClientError, OperatorAdminClient
from mock_operator.client import SignedV2Client
from mock_operator.models import FaultConfig, PlayerSeed, TransactionIn
from support.waits import eventually


def bet(transaction_id: str, amount: int = 100) -> TransactionIn:
    return TransactionIn(
        transaction_id=transaction_id, player_id="p-1", type=TxType.BET, amount_cents=amount, currency="EUR"
    )


async def test_error_rate_answers_5xx_before_applying(v2: SignedV2Client, admin: OperatorAdminClient) -> None:
    await admin.set_faults(FaultConfig(error_rate=1.0, error_status=502))
    answer = await v2.post_transaction(bet("b-1"))
    assert (answer.status, answer.body["error"]["code"]) == (502, "INJECTED_FAULT")
    assert (await admin.ledger()).transactions == []
    await admin.clear_faults()
    assert (await v2.post_transaction(bet("b-1"))).status == 200
    assert (await admin.stats()).faults == {"error": 1}


async def test_drop_closes_the_connection_before_applying(v2: SignedV2Client, admin: OperatorAdminClient) -> None:
    await admin.set_faults(FaultConfig(drop_rate=1.0))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await v2.post_transaction(bet("b-1"))
    assert (await admin.ledger()).transactions == []
    assert (await admin.stats()).faults == {"drop": 1}


async def test_timeout_after_apply_moves_money_but_never_answers(
    v2: SignedV2Client, admin: OperatorAdminClient
) -> None:
    await admin.set_faults(FaultConfig(timeout_after_apply_rate=1.0, hang_ms=50))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await v2.post_transaction(bet("b-1", 300))
    await admin.clear_faults()
    # The caller resolves the unknown outcome by a lookup, and a resend is a replay, not a second debit.
    found = await v2.get_transaction("b-1")
    assert (found.status, found.body["balanceCents"]) == (200, 700)
    assert (await v2.post_transaction(bet("b-1", 300))).body["balanceCents"] == 700
    ledger = await admin.ledger()
    assert ledger.apply_counts == {"b-1": 1}
    assert (await admin.stats()).faults == {"timeoutAfterApply": 1}


async def test_timeout_after_apply_outlasts_a_client_timeout(
    http: aiohttp.ClientSession,
    operator_url: str,
    clock: Callable[[], float],
    admin: OperatorAdminClient,
    operator_secret: SecretStr,
) -> None:
    await admin.set_faults(FaultConfig(timeout_after_apply_rate=1.0, hang_ms=60_000))
    # A read timeout: its clock starts once the request is sent, so the operator has the call whatever the load
    # (a total timeout may fire before the request leaves). It may still give up before the call is applied.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=0.1)) as short:
        client = SignedV2Client(short, operator_url, operator_secret, clock=clock)
        with pytest.raises(TimeoutError):
            await client.post_transaction(bet("b-1"))

    async def applied() -> bool:
        return bool((await admin.ledger()).apply_counts)

    await eventually(applied, what="the timed-out call applied")
    assert (await admin.ledger()).apply_counts == {"b-1": 1}


async def test_latency_delays_then_answers(v2: SignedV2Client, admin: OperatorAdminClient) -> None:
    await admin.set_faults(FaultConfig(latency_ms=20))
    assert (await v2.balance("p-1")).status == 200
    assert (await admin.stats()).faults == {"latency": 1}


async def test_force429_refuses_the_next_calls_then_recovers(v2: SignedV2Client, admin: OperatorAdminClient) -> None:
    await admin.set_faults(FaultConfig(force429=2, retry_after_s=7))
    for _ in range(2):
        answer = await v2.balance("p-1")
        assert (answer.status, answer.headers["Retry-After"]) == (429, "7")
    assert (await v2.balance("p-1")).status == 200
    stats = await admin.stats()
    assert (stats.total_calls, stats.rejected429, stats.accepted, stats.max_in_any_sixty_seconds) == (3, 2, 1, 1)


async def test_seeded_faults_repeat_exactly(v2: SignedV2Client, admin: OperatorAdminClient) -> None:
    async def pattern() -> list[int]:
        await admin.set_faults(FaultConfig(error_rate=0.5, seed=42))
        return [(await v2.balance("p-1")).status for _ in range(20)]

    first = await pattern()
    assert set(first) == {200, 503}
    assert await pattern() == first


# --- admin ---------------------------------------------------------------------------------------------------


async def test_players_seed_and_read(admin: OperatorAdminClient) -> None:
    await admin.seed_players([PlayerSeed(player_id="p-9", balance_cents=5, currency="GBP")])
    assert await admin.player("p-9") == PlayerSeed(player_id="p-9", balance_cents=5, currency="GBP")
    with pytest.raises(AdminClientError) as info:
        await admin.player("ghost")
    assert info.value.status == 404


async def test_faults_can_be_read_back(
    http: aiohttp.ClientSession, operator_url: str, admin: OperatorAdminClient
) -> None:
    await admin.set_faults(FaultConfig(force429=3, latency_ms=5))
    async with http.get(f"{operator_url}/_admin/faults") as response:
        body: dict[str, Any] = await response.json()
    assert body["remaining429"] == 3
    assert body["faults"]["latencyMs"] == 5


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/_admin/faults", {"errorRate": 2}),
        ("/_admin/faults", {"unknown": 1}),
        ("/_admin/faults", {"errorStatus": 404}),
        ("/_admin/config", {"rateLimitPerMinute": 0}),
        ("/_admin/players", {"players": [{"playerId": "p", "balanceCents": -1, "currency": "EUR"}]}),
    ],
)
async def test_admin_validates_bodies(
    http: aiohttp.ClientSession, operator_url: str, path: str, body: dict[str, Any]
) -> None:
    async with http.post(operator_url + path, json=body) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "INVALID_REQUEST"


async def test_reset_restores_a_fresh_start(v2: SignedV2Client, admin: OperatorAdminClient) -> None:
    await admin.set_rate_limit(5)
    await admin.seed_players([PlayerSeed(player_id="p-9", balance_cents=5, currency="GBP")])
    await admin.set_faults(FaultConfig(latency_ms=1))
    await v2.post_transaction(bet("b-1"))
    await admin.reset()
    stats = await admin.stats()
    assert (stats.total_calls, stats.rate_limit_per_minute, stats.calls_per_minute) == (0, 1000, [])
    assert (await admin.ledger()).transactions == []
    assert (await admin.player("p-1")).balance_cents == 1000  # seeded from settings again
    with pytest.raises(AdminClientError):
        await admin.player("p-9")


async def test_ops_routes(http: aiohttp.ClientSession, operator_url: str) -> None:
    async with http.get(f"{operator_url}/health") as response:
        health = await response.json()
        assert (response.status, health["status"], health["service"]) == (200, "ok", "mock-operator")
    async with http.get(f"{operator_url}/ready") as response:
        assert response.status == 200
    async with http.get(f"{operator_url}/metrics") as response:
        assert "mock_operator_calls_total" in await response.text()
