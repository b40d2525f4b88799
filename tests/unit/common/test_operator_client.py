"""OperatorClient against a loopback fake operator: signing, classification, Retry-After, breaker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from hub_common.errors import SignatureError
from hub_common.operator import (
    CircuitOpenError,
    OperatorClient,
    OperatorRateLimited,
    OperatorRejected,
    OperatorSettings,
    OperatorTechnicalError,
    OperatorTransactionRequest,
)
from hub_common.schemas import ErrorCode, TxType
from hub_common.signing import verify_request
from support.apps import serve

SECRET = SecretStr("op-secret")
REQUEST = OperatorTransactionRequest(
    transaction_id="bet-1", player_id="p-1", type=TxType.BET, amount_cents=100, currency="EUR"
)


class FakeOperator:
    """Answers each POST with the next scripted (status, body, headers); records what it received."""

    def __init__(self) -> None:
        self.script: list[tuple[int, Any, dict[str, str]]] = []
        self.received: list[web.Request] = []
        self.bodies: list[bytes] = []

    async def post(self, request: web.Request) -> web.Response:
        self.received.append(request)
        body = await request.read()
        self.bodies.append(body)
        try:
            verify_request(
                [SECRET],
                timestamp=request.headers.get("X-Timestamp"),
                signature=request.headers.get("X-Signature"),
                method=request.method,
                path_with_query=request.path_qs,
                body=body,
            )
        except SignatureError as exc:
            return web.json_response({"error": {"code": exc.code}}, status=401)
        status, payload, headers = self.script.pop(0)
        return web.json_response(payload, status=status, headers=headers)

    async def get(self, request: web.Request) -> web.Response:
        self.received.append(request)
        if request.query.get("transactionId") == "known":
            return web.json_response({"transactionId": "known", "operatorTransactionId": "op-1", "balanceCents": 7})
        return web.json_response({"error": {"code": "TRANSACTION_NOT_FOUND"}}, status=404)


@pytest.fixture
async def operator() -> AsyncIterator[tuple[FakeOperator, str]]:
    fake = FakeOperator()
    app = web.Application()
    app.router.add_post("/v2/transactions", fake.post)
    app.router.add_get("/v2/transactions", fake.get)
    async with serve(app) as url:
        yield fake, url


def client_for(url: str, **overrides: Any) -> OperatorClient:
    return OperatorClient(OperatorSettings(url=url, secret=SECRET, client_id="hub", **overrides), caller="ledger")


async def test_success_is_signed_and_carries_ids(operator: tuple[FakeOperator, str]) -> None:
    fake, url = operator
    fake.script.append((200, {"transactionId": "bet-1", "operatorTransactionId": "op-1", "balanceCents": 900}, {}))
    client = client_for(url)
    try:
        result = await client.post_transaction(REQUEST, correlation_id="corr-1")
    finally:
        await client.close()
    assert (result.operator_transaction_id, result.balance_cents) == ("op-1", 900)
    sent = fake.received[0]
    assert sent.headers["X-Client-Id"] == "hub"
    assert sent.headers["X-Correlation-ID"] == "corr-1"
    assert b'"transactionId":"bet-1"' in fake.bodies[0]


@pytest.mark.parametrize(
    ("status", "body", "code", "balance"),
    [
        (404, {"error": {"code": "PLAYER_NOT_FOUND", "message": "no"}}, ErrorCode.PLAYER_NOT_FOUND, None),
        (422, {"error": {"code": "INSUFFICIENT_FUNDS", "balanceCents": 42}}, ErrorCode.INSUFFICIENT_FUNDS, 42),
        (422, {"error": {"code": "CURRENCY_MISMATCH"}}, ErrorCode.CURRENCY_MISMATCH, None),
        (400, {"error": {"code": "INVALID_REQUEST"}}, ErrorCode.INVALID_REQUEST, None),
    ],
)
async def test_business_errors_are_rejections(
    operator: tuple[FakeOperator, str], status: int, body: Any, code: ErrorCode, balance: int | None
) -> None:
    fake, url = operator
    fake.script.append((status, body, {}))
    client = client_for(url)
    try:
        with pytest.raises(OperatorRejected) as info:
            await client.post_transaction(REQUEST, correlation_id="c")
    finally:
        await client.close()
    assert (info.value.code, info.value.balance_cents) == (code, balance)


async def test_429_carries_retry_after_and_is_not_an_unknown_outcome(operator: tuple[FakeOperator, str]) -> None:
    fake, url = operator
    fake.script.append((429, {"error": {"code": "RATE_LIMITED"}}, {"Retry-After": "3"}))
    client = client_for(url)
    try:
        with pytest.raises(OperatorRateLimited) as info:
            await client.post_transaction(REQUEST, correlation_id="c")
    finally:
        await client.close()
    assert info.value.retry_after_s == 3.0
    assert info.value.outcome_unknown is False


async def test_5xx_is_an_unknown_outcome_and_opens_the_breaker(operator: tuple[FakeOperator, str]) -> None:
    fake, url = operator
    fake.script.extend([(503, {}, {}), (500, {}, {})])
    client = client_for(url, breaker_failures=2, breaker_reset_s=60)
    try:
        for _ in range(2):
            with pytest.raises(OperatorTechnicalError) as info:
                await client.post_transaction(REQUEST, correlation_id="c")
            assert info.value.outcome_unknown is True
        with pytest.raises(CircuitOpenError):
            await client.post_transaction(REQUEST, correlation_id="c")
    finally:
        await client.close()
    assert len(fake.received) == 2  # the open breaker sent nothing
    assert client.retry_in() > 0


async def test_timeout_is_an_unknown_outcome() -> None:
    slow = web.Application()

    async def hang(_: web.Request) -> web.Response:
        await asyncio.sleep(1)  # longer than the client's timeout
        return web.json_response({})

    slow.router.add_post("/v2/transactions", hang)
    async with serve(slow) as slow_url:
        client = client_for(slow_url, timeout_s=0.2)
        try:
            with pytest.raises(OperatorTechnicalError) as info:
                await client.post_transaction(REQUEST, correlation_id="c")
        finally:
            await client.close()
    assert info.value.outcome_unknown is True


async def test_get_resolves_known_and_unknown(operator: tuple[FakeOperator, str]) -> None:
    _, url = operator
    client = client_for(url)
    try:
        known = await client.get_transaction("known", correlation_id="c")
        unknown = await client.get_transaction("nope", correlation_id="c")
    finally:
        await client.close()
    assert known is not None
    assert known.operator_transaction_id == "op-1"
    assert unknown is None


async def test_bad_signature_is_technical_and_not_an_unknown_outcome(operator: tuple[FakeOperator, str]) -> None:
    _, url = operator
    client = OperatorClient(OperatorSettings(url=url, secret=SecretStr("wrong"), client_id="hub"), caller="ledger")
    try:
        with pytest.raises(OperatorTechnicalError) as info:
            await client.post_transaction(REQUEST, correlation_id="c")
    finally:
        await client.close()
    assert (info.value.status, info.value.outcome_unknown) == (401, False)
