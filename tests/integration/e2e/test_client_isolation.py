"""Two RGS clients on one Hub (the second demo client `make up` configures): each one's refIds, bets, refunds and
tombstones are its own. A REFUND or WIN can only refer to the client's own transactions; another client's refId
is unknown to it, answered exactly as a refId nobody ever used."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
from pydantic import SecretStr

from hub_common.operator import operator_id
from hub_devstack.stack import RunningStack
from hub_gateway.client import GatewayClient, GatewayResponse
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import PlayerSeed

SETTLE_S = 60.0


async def settle(client: GatewayClient, body: dict[str, Any]) -> GatewayResponse:
    """POST, and while the answer is 202 send the same request again (same key) until it carries the outcome."""
    key = f"k-{client.client_id}-{body['refId']}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while True:
        response = await client.post_transaction(body, idempotency_key=key)
        if response.status != 202 or loop.time() > deadline:
            return response
        await asyncio.sleep(0.2)


def tx(ref_id: str, tx_type: str, player: str, amount: int, **extra: Any) -> dict[str, Any]:
    return {"refId": ref_id, "type": tx_type, "playerId": player, "amountCents": amount, "currency": "EUR", **extra}


async def test_cross_client_requests_are_isolated(stack: RunningStack) -> None:
    facts = stack.facts
    assert facts.hub_second_client_id and facts.hub_second_client_secret  # written to .hub/env by `make up`
    tag = uuid.uuid4().hex[:8]
    player = f"iso-{tag}"
    async with aiohttp.ClientSession() as session:
        operator = OperatorAdminClient(session, facts.operator_url)
        await operator.seed_players([PlayerSeed(player_id=player, balance_cents=10_000, currency="EUR")])
        a = GatewayClient(session, facts.hub_url, facts.hub_client_id, SecretStr(facts.hub_client_secret))
        b = GatewayClient(session, facts.hub_url, facts.hub_second_client_id, SecretStr(facts.hub_second_client_secret))

        # A's bet; B cannot see it.
        bet = await settle(a, tx(f"bet-{tag}", "BET", player, 1_000, roundId=f"r-{tag}"))
        assert (bet.status, bet.body["balanceCents"]) == (201, 9_000)
        assert (await b.get_transaction(f"bet-{tag}")).error_code == "TRANSACTION_NOT_FOUND"
        # B's WIN naming A's bet names B's own (unknown) bet: A's bet is not named at the operator.
        win = await settle(b, tx(f"win-{tag}", "WIN", player, 300, originalRefId=f"bet-{tag}"))
        assert (win.status, win.body["balanceCents"]) == (201, 9_300)
        # B's refund of A's bet is a refund of an unknown bet: no effect on A's bet.
        stolen = await settle(b, tx(f"ref-{tag}", "REFUND", player, 1_000, originalRefId=f"bet-{tag}"))
        nobodys = await settle(b, tx(f"ref-none-{tag}", "REFUND", player, 1_000, originalRefId=f"none-{tag}"))
        # Exactly the answer for a bet that never existed: nothing about A's bet leaks.
        assert (stolen.status, stolen.body["status"], stolen.body["balanceCents"]) == (201, "COMPLETED", None)
        assert stolen.body["reason"] == nobodys.body["reason"]
        assert (await operator.player(player)).balance_cents == 9_300
        # A's own refund still refunds A's bet: B's refund tombstoned nothing of A's.
        refund = await settle(a, tx(f"ref-{tag}", "REFUND", player, 1_000, originalRefId=f"bet-{tag}"))
        assert (refund.status, refund.body["balanceCents"]) == (201, 10_300)

        # The same refId in two clients: two transactions, each applied once under its own operator id.
        same_a = await settle(a, tx(f"same-{tag}", "BET", player, 100))
        same_b = await settle(b, tx(f"same-{tag}", "BET", player, 200))
        assert (same_a.status, same_b.status) == (201, 201)
        assert same_a.body["transactionId"] != same_b.body["transactionId"]
        assert (await a.get_transaction(f"same-{tag}")).body["amountCents"] == 100
        assert (await b.get_transaction(f"same-{tag}")).body["amountCents"] == 200

        # A tombstone in B (a refund before its bet) blocks B's late bet, not A's bet of the same refId.
        early = await settle(b, tx(f"early-{tag}", "REFUND", player, 50, originalRefId=f"late-{tag}"))
        assert early.body["status"] == "COMPLETED"
        late_b = await settle(b, tx(f"late-{tag}", "BET", player, 50))
        late_a = await settle(a, tx(f"late-{tag}", "BET", player, 50))
        assert (late_b.status, late_b.error_code) == (422, "BET_ALREADY_REFUNDED")
        assert (late_a.status, late_a.body["status"]) == (201, "COMPLETED")

        ledger = await operator.ledger()
        mine = {r.transaction_id: r for r in ledger.transactions if r.player_id == player}
    a_id, b_id = facts.hub_client_id, facts.hub_second_client_id
    assert set(mine) == {
        operator_id(a_id, f"bet-{tag}"),
        operator_id(b_id, f"win-{tag}"),
        operator_id(a_id, f"ref-{tag}"),
        operator_id(a_id, f"same-{tag}"),
        operator_id(b_id, f"same-{tag}"),
        operator_id(a_id, f"late-{tag}"),
    }
    assert all(ledger.apply_counts[i] == 1 for i in mine)
    assert mine[operator_id(b_id, f"win-{tag}")].original_transaction_id == operator_id(b_id, f"bet-{tag}")
    assert mine[operator_id(a_id, f"ref-{tag}")].original_transaction_id == operator_id(a_id, f"bet-{tag}")
    assert (await _balance(facts.operator_url, player)) == 10_300 - 100 - 200 - 50


async def _balance(operator_url: str, player: str) -> int:
    async with aiohttp.ClientSession() as session:
        return (await OperatorAdminClient(session, operator_url).player(player)).balance_cents
