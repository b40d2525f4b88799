"""The outcome wait: a POST answers with the ledger's result when it arrives within the budget."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import SecretStr

from hub_common.operator import OperatorSettings
from hub_common.schemas import ErrorCode, TransactionCommand, TxStatus
from hub_common.settings import KafkaSettings
from hub_gateway.app import WAITER
from hub_gateway.settings import GatewaySettings
from mock_operator.app import create_app as create_operator
from mock_operator.models import PlayerSeed
from mock_operator.settings import MockOperatorSettings
from support.apps import serve
from support.gateway_it import fake_ledger, running_gateway
from support.waits import eventually


def bet(ref_id: str, amount: int = 250) -> dict[str, Any]:
    return {"refId": ref_id, "type": "BET", "playerId": "p-1", "amountCents": amount, "currency": "EUR"}


def decide(command: TransactionCommand) -> tuple[TxStatus, ErrorCode | None, int | None]:
    """Bets up to 1000 complete; bigger ones lack funds; player 'ghost' does not exist."""
    if command.player_id == "ghost":
        return TxStatus.REJECTED, ErrorCode.PLAYER_NOT_FOUND, None
    if command.amount_cents > 1000:
        return TxStatus.REJECTED, ErrorCode.INSUFFICIENT_FUNDS, 1000
    return TxStatus.COMPLETED, None, 1000 - command.amount_cents


async def test_outcome_within_budget_answers_201_then_replays(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    settings = gateway_settings.model_copy(update={"outcome_budget_s": 20.0})
    async with running_gateway(settings) as gw, fake_ledger(kafka_settings, database_url, decide):
        completed = await gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1")
        replay = await gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1")
        poor = await gw.client.post_transaction(bet("bet-2", 5000), idempotency_key="k-2")
        ghost = await gw.client.post_transaction({**bet("bet-3"), "playerId": "ghost"}, idempotency_key="k-3")
        fetched = await gw.client.get_transaction("bet-1")
        assert gw.app[WAITER].watching == 0
    assert completed.status == 201, completed.body
    assert (completed.body["status"], completed.body["balanceCents"]) == ("COMPLETED", 750)
    assert completed.body["operatorTransactionId"] == "op-bet-1"
    assert "Idempotent-Replayed" not in completed.headers
    assert (replay.status, replay.headers["Idempotent-Replayed"]) == (201, "true")
    assert replay.body == completed.body
    assert (poor.status, poor.error_code, poor.body["error"]["balanceCents"]) == (422, "INSUFFICIENT_FUNDS", 1000)
    assert (ghost.status, ghost.error_code) == (404, "PLAYER_NOT_FOUND")
    assert (fetched.status, fetched.body["status"]) == (200, "COMPLETED")


async def test_a_202_replay_later_sees_the_outcome(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    async with running_gateway(gateway_settings) as gw:
        pending = await gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1")
        assert pending.status == 202
        assert pending.headers["Location"] == "/v1/transactions/bet-1"
        # The retry waits for the outcome again; the ledger answers it meanwhile.
        retry = asyncio.create_task(gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1"))
        async with fake_ledger(kafka_settings, database_url, decide):
            replay = await retry
            fetched = await gw.client.get_transaction("bet-1")

            async def fetched_completed() -> bool:  # the fake ledger may still be finishing the row
                nonlocal fetched
                fetched = await gw.client.get_transaction("bet-1")
                return bool(fetched.body["status"] == "COMPLETED")

            await eventually(fetched_completed, what="the transaction COMPLETED")
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.status in (201, 202)
    assert fetched.body["status"] == "COMPLETED"


async def test_balance_is_read_from_the_operator(gateway_settings: GatewaySettings, database_url: str) -> None:
    operator_secret = SecretStr("operator-secret")
    operator = MockOperatorSettings(
        secret=operator_secret,
        players=[PlayerSeed(player_id="p-1", balance_cents=4200, currency="EUR")],
    )
    async with serve(create_operator(operator)) as operator_url:
        settings = gateway_settings.model_copy(
            update={"operator": OperatorSettings(url=operator_url, secret=operator_secret)}
        )
        async with running_gateway(settings) as gw:
            found = await gw.client.get_balance("p-1")
            missing = await gw.client.get_balance("nobody")
    assert (found.status, found.body) == (200, {"playerId": "p-1", "balanceCents": 4200, "currency": "EUR"})
    assert (missing.status, missing.error_code) == (404, "PLAYER_NOT_FOUND")
