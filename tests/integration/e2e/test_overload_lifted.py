"""The same burst with a lifted operator budget is admitted whole; and a BET the operator's Retry-After holds past
its useful life is never sent late: REJECTED BET_EXPIRED, nothing debited, its webhook says so (real stack)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from pydantic import SecretStr

from hub_common.operator import operator_id
from hub_devstack.burst import burst_requests, states
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.stack import RunningStack
from hub_gateway.client import GatewayClient
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import FaultConfig, PlayerSeed
from mock_rgs.admin_client import RgsAdminClient
from mock_rgs.models import Delivery
from support.overload import burst, overload_stack
from support.waits import eventually

RATE = 6000


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, postgres_admin_url: str, db_roles: DatabaseRoles
) -> Iterator[Any]:
    state = tmp_path_factory.mktemp("overload-lifted")
    with overload_stack(state, kafka_bootstrap, postgres_admin_url, db_roles, rate_per_minute=RATE, env={}) as running:
        yield running


async def test_the_same_burst_with_a_lifted_budget_is_admitted_whole(stack: RunningStack) -> None:
    run = uuid.uuid4().hex[:6]
    requests = burst_requests(run, bets=100, wins=10, players=20)
    answers = await burst(stack, requests, concurrency=20)
    assert [a for a in answers if a.status not in (201, 202)] == []

    refs = [r["refId"] for r in requests]

    async def all_completed() -> bool:
        found = await states(stack.facts.database_url, refs)
        return len(found) == len(refs) and all(s.status == "COMPLETED" for s in found.values())

    await eventually(all_completed, timeout_s=120, step_s=0.5, what="every transaction of the burst completed")


async def _pause_over(database_url: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        over = await conn.fetchval("SELECT coalesce(paused_until <= clock_timestamp(), true) FROM operator_budget")
        return bool(over)
    finally:
        await conn.close()


async def test_a_bet_held_past_its_useful_life_is_not_sent_late(stack: RunningStack) -> None:
    facts = stack.facts
    player = f"late-{uuid.uuid4().hex[:8]}"
    ref_id = f"bet-late-{uuid.uuid4().hex[:8]}"
    body = {"refId": ref_id, "type": "BET", "playerId": player, "amountCents": 250, "currency": "EUR"}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        operator = OperatorAdminClient(session, facts.operator_url)
        rgs = RgsAdminClient(session, facts.rgs_url)
        await operator.seed_players([PlayerSeed(player_id=player, balance_cents=10_000, currency="EUR")])
        # The operator throttles the BET's call and asks for 15 s: past the BET's useful life of 10 s.
        await operator.set_faults(FaultConfig(force429=1, retry_after_s=15))
        gateway = GatewayClient(session, facts.hub_url, facts.hub_client_id, SecretStr(facts.hub_client_secret))
        try:
            posted = await gateway.post_transaction(body, idempotency_key=ref_id)

            async def expired() -> bool:
                state = (await states(facts.database_url, [ref_id])).get(ref_id)
                return state is not None and state.status == "REJECTED"

            await eventually(expired, timeout_s=60, step_s=0.5, what="the BET to end")
            got = await gateway.get_transaction(ref_id)
            replay = await gateway.post_transaction(body, idempotency_key=ref_id)

            deliveries: list[Delivery] = []

            async def webhook() -> bool:
                nonlocal deliveries
                received = (await rgs.webhooks()).received
                deliveries = [d for d in received if isinstance(d.body, dict) and d.body["data"]["refId"] == ref_id]
                return bool(deliveries)

            await eventually(webhook, timeout_s=30, step_s=0.2, what="the BET's webhook")
            balance = (await operator.player(player)).balance_cents
            applied = (await operator.ledger()).apply_counts
        finally:
            await operator.clear_faults()
            # The next test (any order) starts with the operator's pause over.
            await eventually(lambda: _pause_over(facts.database_url), timeout_s=30, what="the pause to end")

    assert posted.status == 202  # admitted: nothing predicted the operator's pause
    assert (got.status, got.body["status"], got.body["errorCode"]) == (200, "REJECTED", "BET_EXPIRED")
    assert (replay.status, replay.error_code, replay.headers["Idempotent-Replayed"]) == (422, "BET_EXPIRED", "true")
    assert replay.body["error"]["retryable"] is False
    # Nothing was debited; the operator has no record of it.
    assert balance == 10_000
    assert operator_id(facts.hub_client_id, ref_id) not in applied
    (delivery, *_) = deliveries
    assert delivery.event_type == "transaction.rejected"
    assert orjson.loads(orjson.dumps(delivery.body))["data"]["errorCode"] == "BET_EXPIRED"
