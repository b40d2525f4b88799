"""Authentication of /v1 requests: client id, HMAC over the raw request, timestamp window, key rotation."""

from __future__ import annotations

import logging
import time
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from hub_common.signing import request_headers
from hub_gateway.client import GatewayClient
from support.gateway_fakes import CLIENT_ID, NEW_SECRET, OLD_SECRET, OTHER_CLIENT, OTHER_SECRET, FakeTransactions

BET: dict[str, Any] = {"refId": "bet-1", "type": "BET", "playerId": "p-1", "amountCents": 250, "currency": "EUR"}


def _error(body: Any) -> dict[str, Any]:
    assert isinstance(body, dict) and set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    return error


async def test_both_active_secrets_verify_during_rotation(
    session: aiohttp.ClientSession, base_url: str, transactions: FakeTransactions
) -> None:
    for secret in (OLD_SECRET, NEW_SECRET):
        client = GatewayClient(session, base_url, CLIENT_ID, secret)
        response = await client.post_transaction({**BET, "refId": f"bet-{secret}"}, idempotency_key=f"k-{secret}")
        assert response.status == 201
    assert [s.client_id for s in transactions.submitted] == [CLIENT_ID, CLIENT_ID]


async def test_unknown_client_is_refused_before_the_service(
    session: aiohttp.ClientSession, base_url: str, transactions: FakeTransactions
) -> None:
    client = GatewayClient(session, base_url, "rgs-unknown", NEW_SECRET)
    response = await client.post_transaction(BET, idempotency_key="k-1")
    assert response.status == 401
    assert _error(response.body)["code"] == "UNKNOWN_CLIENT"
    assert transactions.submitted == []


async def test_missing_client_header_is_unknown_client(session: aiohttp.ClientSession, base_url: str) -> None:
    body = orjson.dumps(BET)
    headers = {**request_headers(NEW_SECRET, "POST", "/v1/transactions", body), "Idempotency-Key": "k-1"}
    async with session.post(base_url + "/v1/transactions", data=body, headers=headers) as response:
        assert response.status == 401
        assert _error(await response.json())["code"] == "UNKNOWN_CLIENT"


async def test_another_clients_secret_is_an_invalid_signature(
    session: aiohttp.ClientSession, base_url: str, transactions: FakeTransactions
) -> None:
    client = GatewayClient(session, base_url, CLIENT_ID, OTHER_SECRET)
    response = await client.post_transaction(BET, idempotency_key="k-1")
    assert response.status == 401
    error = _error(response.body)
    assert error["code"] == "INVALID_SIGNATURE"
    assert error["retryable"] is False
    assert transactions.submitted == []


async def test_signature_covers_the_body(session: aiohttp.ClientSession, base_url: str) -> None:
    signed_for = orjson.dumps(BET)
    sent = orjson.dumps({**BET, "amountCents": 999_999})
    headers = {
        "X-Client-Id": CLIENT_ID,
        "Idempotency-Key": "k-1",
        **request_headers(NEW_SECRET, "POST", "/v1/transactions", signed_for),
    }
    async with session.post(base_url + "/v1/transactions", data=sent, headers=headers) as response:
        assert response.status == 401
        assert _error(await response.json())["code"] == "INVALID_SIGNATURE"


async def test_missing_signature_is_invalid(session: aiohttp.ClientSession, base_url: str) -> None:
    headers = {"X-Client-Id": CLIENT_ID, "X-Timestamp": str(int(time.time())), "Idempotency-Key": "k-1"}
    async with session.post(base_url + "/v1/transactions", data=orjson.dumps(BET), headers=headers) as response:
        assert response.status == 401
        assert _error(await response.json())["code"] == "INVALID_SIGNATURE"


async def test_stale_timestamp(client: GatewayClient) -> None:
    response = await client.request("GET", "/v1/transactions/bet-1", now=time.time() - 301)
    assert response.status == 401
    assert _error(response.body)["code"] == "STALE_TIMESTAMP"


async def test_future_timestamp_is_stale_too(client: GatewayClient) -> None:
    response = await client.request("GET", "/v1/transactions/bet-1", now=time.time() + 301)
    assert _error(response.body)["code"] == "STALE_TIMESTAMP"


async def test_get_is_signed_and_scoped_to_the_calling_client(
    session: aiohttp.ClientSession, base_url: str, client: GatewayClient
) -> None:
    assert (await client.post_transaction(BET, idempotency_key="k-1")).status == 201
    mine = await client.get_transaction("bet-1")
    assert mine.status == 200
    assert mine.body["refId"] == "bet-1"

    other = await GatewayClient(session, base_url, OTHER_CLIENT, OTHER_SECRET).get_transaction("bet-1")
    assert other.status == 404
    assert _error(other.body)["code"] == "TRANSACTION_NOT_FOUND"

    forged = await GatewayClient(session, base_url, CLIENT_ID, SecretStr("guess")).get_transaction("bet-1")
    assert forged.status == 401


async def test_signature_covers_the_query_string(session: aiohttp.ClientSession, base_url: str) -> None:
    headers = {"X-Client-Id": CLIENT_ID, **request_headers(NEW_SECRET, "GET", "/v1/transactions/bet-1", b"")}
    async with session.get(base_url + "/v1/transactions/bet-1?x=1", headers=headers) as response:
        assert response.status == 401


async def test_correlation_id_is_echoed_or_generated(client: GatewayClient) -> None:
    echoed = await client.post_transaction(BET, idempotency_key="k-1", headers={"X-Correlation-ID": "corr-123"})
    assert echoed.headers["X-Correlation-ID"] == "corr-123"

    refused = await client.request("GET", "/v1/transactions/bet-1", now=0)
    generated = refused.headers["X-Correlation-ID"]
    assert generated
    assert _error(refused.body)["correlationId"] == generated


async def test_a_refused_client_id_is_logged_truncated(
    session: aiohttp.ClientSession, base_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    long_id = "x" * 5_000
    with caplog.at_level(logging.WARNING, logger="hub_gateway"):
        response = await GatewayClient(session, base_url, long_id, NEW_SECRET).get_transaction("bet-1")
    assert _error(response.body)["code"] == "UNKNOWN_CLIENT"
    [record] = [r for r in caplog.records if r.getMessage() == "request from an unknown client"]
    assert record.__dict__["clientId"] == "x" * 64 + "...(+4936)"
