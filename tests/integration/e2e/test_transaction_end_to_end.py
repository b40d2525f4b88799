"""One signed BET through every real process: gateway -> Kafka -> ledger -> operator -> Kafka -> dispatcher -> RGS."""

from __future__ import annotations

import uuid

import aiohttp
import asyncpg
import orjson
from pydantic import SecretStr

from hub_client import verify_webhook
from hub_common.operator import operator_id
from hub_devstack.stack import RunningStack
from hub_gateway.client import GatewayClient
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import PlayerSeed
from mock_rgs.admin_client import RgsAdminClient
from mock_rgs.models import Delivery
from support.waits import eventually


async def _webhooks_for(rgs: RgsAdminClient, event_ref: str) -> list[Delivery]:
    got: list[Delivery] = []

    async def arrived() -> bool:
        nonlocal got
        got = [
            d
            for d in (await rgs.webhooks()).received
            if isinstance(d.body, dict) and d.body["data"]["refId"] == event_ref
        ]
        return bool(got)

    await eventually(arrived, timeout_s=30, step_s=0.2, what=f"the webhook of {event_ref}")
    return got


async def test_signed_bet_is_completed_applied_once_and_its_webhook_verifies(stack: RunningStack) -> None:
    facts = stack.facts
    player = f"e2e-{uuid.uuid4().hex[:8]}"
    ref_id = f"bet-{uuid.uuid4().hex[:12]}"
    body = {
        "refId": ref_id,
        "type": "BET",
        "playerId": player,
        "amountCents": 250,
        "currency": "EUR",
        "roundId": "r-1",
        "gameId": "slot-7",
    }
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        operator = OperatorAdminClient(session, facts.operator_url)
        rgs = RgsAdminClient(session, facts.rgs_url)
        await operator.seed_players([PlayerSeed(player_id=player, balance_cents=10_000, currency="EUR")])
        gateway = GatewayClient(session, facts.hub_url, facts.hub_client_id, SecretStr(facts.hub_client_secret))

        response = await gateway.request(
            "POST", "/v1/transactions", body=orjson.dumps(body), headers={"Idempotency-Key": f"k-{ref_id}"}
        )

        assert response.status == 201, response.body
        assert response.body["status"] == "COMPLETED"
        assert response.body["refId"] == ref_id
        assert response.body["balanceCents"] == 9_750
        correlation_id = response.headers["X-Correlation-ID"]

        # The operator applied it exactly once, under transactionId = `{clientId}:{refId}`.
        assert (await operator.player(player)).balance_cents == 9_750
        ledger = await operator.ledger()
        sent_as = operator_id(facts.hub_client_id, ref_id)
        assert ledger.apply_counts[sent_as] == 1
        assert [r.transaction_id for r in ledger.transactions if r.player_id == player] == [sent_as]

        deliveries = await _webhooks_for(rgs, ref_id)

    conn = await asyncpg.connect(facts.database_url)
    try:
        row = await conn.fetchrow("SELECT id, status, balance_cents FROM transactions WHERE ref_id = $1", ref_id)
        key = await conn.fetchrow("SELECT status FROM idempotency_keys WHERE key = $1", f"k-{ref_id}")
    finally:
        await conn.close()
    assert row is not None and row["status"] == "COMPLETED" and row["balance_cents"] == 9_750
    assert key is not None and key["status"] == "COMPLETED"

    assert len(deliveries) == 1
    (delivery,) = deliveries
    assert delivery.verified and delivery.status == 200 and delivery.attempt == 1
    assert delivery.event_type == "transaction.completed"
    assert delivery.body["data"]["transactionId"] == str(row["id"])
    assert delivery.headers["X-Correlation-ID"] == correlation_id
    # Verify as an RGS would, independently of mock-rgs: both signature families over the raw body.
    raw = orjson.dumps(delivery.body)
    event = verify_webhook(delivery.headers, raw, [facts.webhook_secret])
    assert event.event_id == delivery.event_id and event.transaction.ref_id == ref_id
