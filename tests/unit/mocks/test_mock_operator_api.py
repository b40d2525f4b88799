"""The `/v2` API over real HTTP: signatures, transactions, lookups, the feed, balances, rate limit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from hub_common.schemas import TxType
from hub_common.signing import request_headers
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.app import create_app
from mock_operator.client import SignedV2Client
from mock_operator.models import TransactionIn
from mock_operator.settings import MockOperatorSettings
from support.apps import serve


def bet(transaction_id: str, amount: int = 100, **extra: Any) -> TransactionIn:
    fields: dict[str, Any] = {"player_id": "p-1", "currency": "EUR", "round_id": "r-1", "game_id": "g-1"}
    fields.update(extra)
    return TransactionIn(transaction_id=transaction_id, type=TxType.BET, amount_cents=amount, **fields)


async def test_post_transaction_applies_and_replays(v2: SignedV2Client, admin: OperatorAdminClient) -> None:
    first = await v2.post_transaction(bet("b-1", 300))
    assert first.status == 200
    assert first.body["transactionId"] == "b-1"
    assert first.body["status"] == "COMPLETED"
    assert first.body["balanceCents"] == 700
    replay = await v2.post_transaction(bet("b-1", 300))
    assert replay.status == 200
    assert replay.body == first.body
    conflict = await v2.post_transaction(bet("b-1", 301))
    assert conflict.status == 409
    assert conflict.body["error"]["code"] == "TRANSACTION_CONFLICT"
    ledger = await admin.ledger()
    assert ledger.apply_counts == {"b-1": 1}
    assert (await admin.player("p-1")).balance_cents == 700


async def test_business_errors(v2: SignedV2Client) -> None:
    funds = await v2.post_transaction(bet("b-1", 5000))
    assert funds.status == 422
    assert funds.body == {
        "error": {"code": "INSUFFICIENT_FUNDS", "message": funds.body["error"]["message"], "balanceCents": 1000}
    }
    currency = await v2.post_transaction(bet("b-2", currency="USD"))
    assert (currency.status, currency.body["error"]["code"]) == (422, "CURRENCY_MISMATCH")
    assert "balanceCents" not in currency.body["error"]
    player = await v2.post_transaction(bet("b-3", player_id="ghost"))
    assert (player.status, player.body["error"]["code"]) == (404, "PLAYER_NOT_FOUND")


async def test_malformed_bodies_are_400(v2: SignedV2Client) -> None:
    missing = await v2.request("POST", "/v2/transactions", {"transactionId": "x"})
    assert (missing.status, missing.body["error"]["code"]) == (400, "INVALID_REQUEST")
    assert missing.body["error"]["details"]
    refund = await v2.request(
        "POST",
        "/v2/transactions",
        {"transactionId": "rf", "playerId": "p-1", "type": "REFUND", "amountCents": 1, "currency": "EUR"},
    )
    assert (refund.status, refund.body["error"]["code"]) == (400, "INVALID_REQUEST")


async def test_refund_over_http(v2: SignedV2Client) -> None:
    await v2.post_transaction(bet("b-1", 300))
    refund = TransactionIn(
        transaction_id="rf-1",
        player_id="p-1",
        type=TxType.REFUND,
        amount_cents=300,
        currency="EUR",
        original_transaction_id="b-1",
    )
    answer = await v2.post_transaction(refund)
    assert (answer.status, answer.body["balanceCents"]) == (200, 1000)


async def test_lookup_by_transaction_id(v2: SignedV2Client, clock: Callable[[], float]) -> None:
    missing = await v2.get_transaction("b-1")
    assert (missing.status, missing.body["error"]["code"]) == (404, "TRANSACTION_NOT_FOUND")
    await v2.post_transaction(bet("b-1", 300))
    found = await v2.get_transaction("b-1")
    assert found.status == 200
    assert found.body["transactionId"] == "b-1"
    assert found.body["type"] == "BET"
    assert found.body["amountCents"] == 300
    assert found.body["balanceCents"] == 700
    assert found.body["originalTransactionId"] is None
    assert found.body["status"] == "COMPLETED"
    assert datetime.fromisoformat(found.body["createdAt"]) == datetime.fromtimestamp(clock(), UTC)


async def test_feed_pages_by_cursor(
    v2: SignedV2Client, clock: Callable[[], float], advance: Callable[[float], None]
) -> None:
    start = clock()
    for i in range(5):
        await v2.post_transaction(bet(f"b-{i}", 10))
        advance(60)
    since = datetime.fromtimestamp(start + 60, UTC).isoformat()
    first = await v2.feed(**{"from": since}, limit=2)
    assert first.status == 200
    assert [item["transactionId"] for item in first.body["items"]] == ["b-1", "b-2"]
    second = await v2.feed(**{"from": since}, limit=2, cursor=first.body["nextCursor"])
    assert [item["transactionId"] for item in second.body["items"]] == ["b-3", "b-4"]
    assert second.body["nextCursor"] is None
    until = await v2.feed(to=datetime.fromtimestamp(start + 60, UTC).isoformat().replace("+00:00", "Z"))
    assert [item["transactionId"] for item in until.body["items"]] == ["b-0"]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=x", "from=yesterday", "cursor=zz"])
async def test_feed_rejects_bad_parameters(v2: SignedV2Client, query: str) -> None:
    answer = await v2.request("GET", f"/v2/transactions?{query}")
    assert (answer.status, answer.body["error"]["code"]) == (400, "INVALID_REQUEST")


async def test_balance(v2: SignedV2Client) -> None:
    answer = await v2.balance("p-1")
    assert (answer.status, answer.body) == (200, {"balanceCents": 1000, "currency": "EUR"})
    missing = await v2.balance("ghost")
    assert (missing.status, missing.body["error"]["code"]) == (404, "PLAYER_NOT_FOUND")


async def test_correlation_id_is_echoed(
    v2: SignedV2Client, http: aiohttp.ClientSession, operator_url: str, clock: Callable[[], float]
) -> None:
    assert (await v2.balance("p-1")).headers["X-Correlation-ID"]
    headers = request_headers(SecretStr("operator-test-secret"), "GET", "/v2/players/p-1/balance", b"", now=clock())
    headers["X-Correlation-ID"] = "corr-1"
    async with http.get(f"{operator_url}/v2/players/p-1/balance", headers=headers) as response:
        assert response.status == 200
        assert response.headers["X-Correlation-ID"] == "corr-1"


# --- signatures ----------------------------------------------------------------------------------------------


async def test_unsigned_and_badly_signed_requests_are_401(
    v2: SignedV2Client,
    http: aiohttp.ClientSession,
    operator_url: str,
    clock: Callable[[], float],
    admin: OperatorAdminClient,
) -> None:
    unsigned = await v2.request("POST", "/v2/transactions", bet("b-1").to_wire(), sign=False)
    assert (unsigned.status, unsigned.body["error"]["code"]) == (401, "STALE_TIMESTAMP")
    wrong = SignedV2Client(http, operator_url, SecretStr("not-the-secret"), clock=clock)
    bad = await wrong.post_transaction(bet("b-1"))
    assert (bad.status, bad.body["error"]["code"]) == (401, "INVALID_SIGNATURE")
    stale = SignedV2Client(http, operator_url, SecretStr("operator-test-secret"), clock=lambda: clock() - 301)
    old = await stale.balance("p-1")
    assert (old.status, old.body["error"]["code"]) == (401, "STALE_TIMESTAMP")
    assert (await admin.ledger()).transactions == []


async def test_signature_covers_the_query(
    http: aiohttp.ClientSession, operator_url: str, clock: Callable[[], float]
) -> None:
    secret = SecretStr("operator-test-secret")
    headers = request_headers(secret, "GET", "/v2/transactions?transactionId=a", b"", now=clock())
    async with http.get(f"{operator_url}/v2/transactions?transactionId=b", headers=headers) as response:
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "INVALID_SIGNATURE"


async def test_client_id_must_match_when_configured(
    http: aiohttp.ClientSession, operator_settings: MockOperatorSettings, clock: Callable[[], float]
) -> None:
    settings = operator_settings.model_copy(update={"client_id": "integration-hub"})
    secret = settings.secret
    async with serve(create_app(settings, clock=clock)) as url:
        good = SignedV2Client(http, url, secret, client_id="integration-hub", clock=clock)
        assert (await good.balance("p-1")).status == 200
        anonymous = SignedV2Client(http, url, secret, clock=clock)
        assert (await anonymous.balance("p-1")).status == 200
        other = SignedV2Client(http, url, secret, client_id="someone-else", clock=clock)
        answer = await other.balance("p-1")
        assert (answer.status, answer.body["error"]["code"]) == (401, "UNKNOWN_CLIENT")


async def test_any_client_id_is_accepted_when_none_is_configured(
    http: aiohttp.ClientSession, operator_url: str, operator_secret: SecretStr, clock: Callable[[], float]
) -> None:
    client = SignedV2Client(http, operator_url, operator_secret, client_id="whoever", clock=clock)
    assert (await client.balance("p-1")).status == 200


# --- rate limit ----------------------------------------------------------------------------------------------


async def test_rate_limit_answers_429_with_retry_after_and_counts_everything(
    v2: SignedV2Client, admin: OperatorAdminClient, advance: Callable[[float], None]
) -> None:
    assert (await admin.set_rate_limit(3)).rate_limit_per_minute == 3
    assert (await v2.post_transaction(bet("b-1"))).status == 200
    advance(10)
    assert (await v2.balance("p-1")).status == 200
    advance(10)
    assert (await v2.get_transaction("b-1")).status == 200
    advance(10)
    limited = await v2.post_transaction(bet("b-2"))
    assert limited.status == 429
    assert limited.headers["Retry-After"] == "30"
    assert limited.body["error"]["code"] == "RATE_LIMITED"
    advance(30)  # the first call leaves the window
    assert (await v2.post_transaction(bet("b-2"))).status == 200

    stats = await admin.stats()
    assert stats.total_calls == 5
    assert stats.accepted == 4
    assert stats.rejected429 == 1
    assert stats.max_in_any_sixty_seconds == 3
    assert stats.rate_limit_per_minute == 3
    assert stats.by_endpoint == {
        "POST /v2/transactions": 3,
        "GET /v2/players/{playerId}/balance": 1,
        "GET /v2/transactions": 1,
    }
    assert [(m.count, m.accepted, m.rejected429) for m in stats.calls_per_minute] == [(4, 3, 1), (1, 1, 0)]
    assert sum(m.count for m in stats.calls_per_minute) == stats.total_calls


async def test_unsigned_calls_burn_the_budget_too(v2: SignedV2Client, admin: OperatorAdminClient) -> None:
    await admin.set_rate_limit(1)
    assert (await v2.balance("p-1")).status == 200
    assert (await v2.request("GET", "/v2/players/p-1/balance", sign=False)).status == 429
