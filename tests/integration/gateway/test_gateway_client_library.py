"""hub-client against the real gateway (Kafka, PostgreSQL; the ledger's part played by `fake_ledger`)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

import hub_client
from hub_client import AsyncHubClient, FollowPolicy, HubClient, RetryPolicy, bet
from hub_common.operator import OperatorSettings
from hub_common.schemas import ErrorCode, TransactionCommand, TxStatus
from hub_common.settings import KafkaSettings
from hub_gateway.settings import GatewaySettings
from support.gateway_it import CLIENT_ID, SECRET, fake_ledger, running_gateway

FOLLOW = FollowPolicy(timeout_s=20, interval_s=0.05, max_interval_s=0.2)


def decide(command: TransactionCommand) -> tuple[TxStatus, ErrorCode | None, int | None]:
    """Bets up to 1000 complete; bigger ones lack funds."""
    if command.amount_cents > 1000:
        return TxStatus.REJECTED, ErrorCode.INSUFFICIENT_FUNDS, 1000
    return TxStatus.COMPLETED, None, 1000 - command.amount_cents


def client(url: str, secret: str = SECRET.get_secret_value(), **kwargs: object) -> AsyncHubClient:
    return AsyncHubClient(url, CLIENT_ID, secret, follow=FOLLOW, **kwargs)  # type: ignore[arg-type]


async def test_the_blocking_client_places_a_bet_and_a_retry_replays_it(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    settings = gateway_settings.model_copy(update={"outcome_budget_s": 20.0})
    async with running_gateway(settings) as gw, fake_ledger(kafka_settings, database_url, decide):

        def rgs() -> tuple[hub_client.Transaction, hub_client.Transaction, hub_client.Transaction]:
            # A refId that needs percent-encoding: the signature covers the path exactly as sent.
            with HubClient(gw.url, CLIENT_ID, SECRET.get_secret_value()) as hub:
                first = hub.submit(bet("bet/1?%", "p-1", 250, "EUR", round_id="r-1"))
                again = hub.submit(bet("bet/1?%", "p-1", 250, "EUR", round_id="r-1"))
                return first, again, hub.get("bet/1?%")

        first, again, fetched = await asyncio.to_thread(rgs)
    assert (first.status, first.balance_cents, first.ref_id) == ("COMPLETED", 750, "bet/1?%")
    assert again == first == fetched


async def test_a_202_is_followed_to_the_outcome(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    settings = gateway_settings.model_copy(update={"outcome_budget_s": 0.0})
    async with running_gateway(settings) as gw, client(gw.url) as hub:
        pending = await hub.submit(bet("bet-1", "p-1", 250, "EUR"), follow=False)
        assert pending.status == "PENDING"
        async with fake_ledger(kafka_settings, database_url, decide):
            done = await hub.submit(bet("bet-2", "p-1", 300, "EUR"))
            with pytest.raises(hub_client.InsufficientFunds) as poor:
                await hub.submit(bet("bet-3", "p-1", 5000, "EUR"))
            first = await hub.wait("bet-1")
    assert (done.status, done.balance_cents) == ("COMPLETED", 700)
    assert (poor.value.status, poor.value.balance_cents, poor.value.retryable) == (422, 1000, False)
    assert first.status == "COMPLETED"


async def test_requests_the_gateway_refuses_raise_their_typed_error(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    async with (
        running_gateway(gateway_settings) as gw,
        fake_ledger(kafka_settings, database_url, decide),
        client(gw.url) as hub,
    ):
        async with client(gw.url, "not-the-secret") as impostor:
            with pytest.raises(hub_client.InvalidSignature):
                await impostor.get("x")
        async with AsyncHubClient(gw.url, "nobody", "x") as stranger:
            with pytest.raises(hub_client.UnknownClient):
                await stranger.get("x")
        with pytest.raises(hub_client.TransactionNotFound):
            await hub.get("never-sent")
        with pytest.raises(hub_client.UnsupportedCurrency):
            await hub.submit(bet("bet-1", "p-1", 250, "XXX"))
        with pytest.raises(hub_client.InvalidRequest) as invalid:
            await hub.submit(bet("bet-1", "p-1", 0, "EUR"))
        assert invalid.value.details
        await hub.submit(bet("bet-1", "p-1", 250, "EUR"))
        with pytest.raises(hub_client.IdempotencyKeyReused):
            await hub.submit(bet("bet-1", "p-1", 999, "EUR"))
        with pytest.raises(hub_client.DuplicateRefId):
            await hub.submit(bet("bet-1", "p-1", 999, "EUR"), idempotency_key="another-key")


async def test_429_is_retried_after_retry_after_with_the_same_key(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    # 2 operator calls per 2 s and no ledger yet: 4 BETs fit in a 3 s useful life, the 5th would wait 4 s (429).
    operator = OperatorSettings(rate_per_minute=2, window_s=2.0, safety_margin_s=0.0)
    update = {"outcome_budget_s": 0.0, "operator": operator, "bet_useful_life_s": 3.0, "client_bet_share": 1.0}
    settings = gateway_settings.model_copy(update=update)
    answers: list[tuple[int, str | None]] = []
    refused = asyncio.Event()

    async def record(response: httpx.Response) -> None:
        if response.request.method == "POST":
            answers.append((response.status_code, response.request.headers["Idempotency-Key"]))
            if response.status_code == 429:
                refused.set()

    http = httpx.AsyncClient(event_hooks={"response": [record]})
    retry = RetryPolicy(attempts=10, max_retry_after_s=60)
    async with running_gateway(settings) as gw, client(gw.url, retry=retry, http=http) as hub:
        for ref in ("bet-1", "bet-2", "bet-4", "bet-5"):
            await hub.submit(bet(ref, "p-1", 1, "EUR"), follow=False)
        submitted = asyncio.create_task(hub.submit(bet("bet-3", "p-1", 1, "EUR")))
        await asyncio.wait_for(refused.wait(), timeout=30)
        # The ledger drains the queue; the client's retry after Retry-After (1 s) is admitted and followed.
        async with fake_ledger(kafka_settings, database_url, decide):
            done = await asyncio.wait_for(submitted, timeout=60)
    await http.aclose()
    assert done.status == "COMPLETED"
    third = [status for status, key in answers if key == "bet-3"]
    assert third[0] == 429 and third[-1] in (201, 202), answers
