from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from hub_common.errors import SignatureError
from hub_common.signing import verify_request
from hub_reconciler.errors import OperatorFeedError
from hub_reconciler.feed import OperatorFeedClient
from hub_reconciler.settings import OperatorFeedSettings
from support.apps import serve

SECRET = SecretStr("operator-secret")
START = datetime(2024, 1, 15, tzinfo=UTC)
END = datetime(2024, 1, 16, tzinfo=UTC)


def record(ref_id: str) -> dict[str, Any]:
    return {"transactionId": ref_id, "amountCents": 100, "currency": "EUR", "status": "COMPLETED", "extra": 1}


class FakeFeed:
    """The operator's feed: verifies our signature, pages with a cursor, can answer 429 first."""

    def __init__(self, pages: list[list[dict[str, Any]]], *, throttle: int = 0) -> None:
        self.pages = pages
        self.throttle = throttle
        self.seen: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        try:
            verify_request(
                [SECRET],
                timestamp=request.headers.get("X-Timestamp"),
                signature=request.headers.get("X-Signature"),
                method=request.method,
                path_with_query=request.raw_path,
                body=await request.read(),
            )
        except SignatureError as exc:
            return web.json_response({"error": {"code": exc.code}}, status=401)
        if self.throttle:
            self.throttle -= 1
            return web.json_response({}, status=429, headers={"Retry-After": "0"})
        self.seen.append(dict(request.query) | {"client": request.headers.get("X-Client-Id", "")})
        index = int(request.query.get("cursor", "0"))
        more = index + 1 < len(self.pages)
        return web.json_response({"items": self.pages[index], "nextCursor": str(index + 1) if more else None})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v2/transactions", self.handle)
        return app


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def collect(client: OperatorFeedClient) -> list[str]:
    return [r.transaction_id async for r in client.records(START, END)]


async def test_pages_are_followed_and_signed(session: aiohttp.ClientSession) -> None:
    feed = FakeFeed([[record("a"), record("b")], [record("c")]])
    async with serve(feed.app()) as url:
        settings = OperatorFeedSettings(url=url, client_id="hub", secret=SECRET, page_limit=2)
        assert await collect(OperatorFeedClient(settings, session)) == ["a", "b", "c"]
    assert feed.seen[0] == {"from": "2024-01-15T00:00:00Z", "to": "2024-01-16T00:00:00Z", "limit": "2", "client": "hub"}
    assert feed.seen[1]["cursor"] == "1"


async def test_invalid_items_are_skipped(session: aiohttp.ClientSession) -> None:
    feed = FakeFeed([[record("a"), {"transactionId": "broken"}]])
    async with serve(feed.app()) as url:
        client = OperatorFeedClient(OperatorFeedSettings(url=url, secret=SECRET), session)
        assert await collect(client) == ["a"]


async def test_429_is_retried_after_the_operators_delay(session: aiohttp.ClientSession) -> None:
    feed = FakeFeed([[record("a")]], throttle=1)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async with serve(feed.app()) as url:
        client = OperatorFeedClient(OperatorFeedSettings(url=url, secret=SECRET), session, sleep=sleep)
        assert await collect(client) == ["a"]
    assert slept == [0.0]


async def test_wrong_secret_and_persistent_429_raise_typed_errors(session: aiohttp.ClientSession) -> None:
    feed = FakeFeed([[record("a")]], throttle=5)
    async with serve(feed.app()) as url:
        bad = OperatorFeedClient(OperatorFeedSettings(url=url, secret=SecretStr("wrong")), session)
        with pytest.raises(OperatorFeedError) as unauthorized:
            await collect(bad)
        assert unauthorized.value.status == 401

        async def sleep(_: float) -> None:
            return None

        throttled = OperatorFeedClient(
            OperatorFeedSettings(url=url, secret=SECRET, max_attempts=2), session, sleep=sleep
        )
        with pytest.raises(OperatorFeedError) as limited:
            await collect(throttled)
        assert limited.value.status == 429 and limited.value.retryable


async def test_unreachable_operator_is_an_infrastructure_error(session: aiohttp.ClientSession) -> None:
    async with serve(web.Application()) as url:
        pass  # the port is free again once the server is gone
    client = OperatorFeedClient(OperatorFeedSettings(url=url, secret=SECRET, timeout_s=2), session)
    with pytest.raises(OperatorFeedError):
        await collect(client)
