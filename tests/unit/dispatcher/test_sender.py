from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from pydantic import SecretStr

from hub_common.breaker import CircuitBreaker
from hub_dispatcher.endpoints import Endpoint
from hub_dispatcher.sender import Sender
from support.apps import serve


def endpoint(url: str, *, timeout_s: float = 5) -> Endpoint:
    return Endpoint(
        client_id="rgs",
        url=url,
        secrets=[SecretStr("s")],
        timeout_s=timeout_s,
        limit=asyncio.Semaphore(2),
        breaker=CircuitBreaker("rgs", failure_threshold=5, open_s=30),
    )


async def ok(request: web.Request) -> web.Response:
    assert await request.read() == b'{"a":1}'
    assert request.headers["X-Attempt"] == "1"
    return web.Response(text="x" * 100)


async def throttled(_: web.Request) -> web.Response:
    return web.Response(status=429, text="slow down", headers={"Retry-After": "7"})


async def redirect(_: web.Request) -> web.Response:
    return web.Response(status=302, headers={"Location": "/ok"})


RELEASE = web.AppKey("release", asyncio.Event)


async def hang(request: web.Request) -> web.Response:
    await request.app[RELEASE].wait()
    return web.Response()


@pytest.fixture
async def base() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/ok", ok)
    app.router.add_post("/throttled", throttled)
    app.router.add_post("/redirect", redirect)
    app.router.add_post("/hang", hang)
    app[RELEASE] = asyncio.Event()
    async with serve(app) as url:
        yield url
        app[RELEASE].set()  # let a hanging handler finish so the server stops at once


@pytest.fixture
async def sender() -> AsyncIterator[Sender]:
    async with aiohttp.ClientSession() as session:
        yield Sender(session, excerpt_bytes=16)


async def test_success_keeps_a_bounded_response_excerpt(base: str, sender: Sender) -> None:
    response = await sender.post(endpoint(base + "/ok"), b'{"a":1}', {"X-Attempt": "1"})
    assert response.status == 200
    assert response.error is None
    assert response.excerpt == "x" * 16
    assert response.latency_s >= 0


async def test_retry_after_is_read(base: str, sender: Sender) -> None:
    response = await sender.post(endpoint(base + "/throttled"), b"{}", {})
    assert response.status == 429
    assert response.error == "HTTP 429"
    assert response.retry_after_s == 7
    assert response.excerpt == "slow down"


async def test_redirects_are_not_followed(base: str, sender: Sender) -> None:
    response = await sender.post(endpoint(base + "/redirect"), b"{}", {})
    assert response.status == 302


async def test_timeout_is_a_failure_without_status(base: str, sender: Sender) -> None:
    response = await sender.post(endpoint(base + "/hang", timeout_s=0.2), b"{}", {})
    assert response.status is None
    assert response.error == "timeout after 0.2 s"


async def test_connection_refused_is_a_failure_without_status(sender: Sender) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    response = await sender.post(endpoint(f"http://127.0.0.1:{port}/x"), b"{}", {})
    assert response.status is None
    assert response.error is not None
    assert response.error.startswith("connection error")
