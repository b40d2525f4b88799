"""Probes: /live never waits on a dependency, /ready and /health share one cached, time-bounded round of checks,
and /health keeps the runbook's shape with 503 when degraded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hub_common.http import Ops
from support.waits import eventually


class Dependency:
    """A check whose answer the test sets; `hang` makes it wait forever (a dependency that never answers)."""

    def __init__(self) -> None:
        self.up = True
        self.hang = False
        self.calls = 0

    async def __call__(self) -> bool:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        return self.up


Client = Callable[[Ops], Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    clients: list[TestClient[web.Request, web.Application]] = []

    async def make(ops: Ops) -> TestClient[web.Request, web.Application]:
        app = web.Application()
        ops.add_routes(app)
        started = TestClient(TestServer(app))
        await started.start_server()
        clients.append(started)
        return started

    yield make
    for started in clients:
        await started.close()


async def test_live_answers_while_every_dependency_hangs(client: Client) -> None:
    kafka = Dependency()
    kafka.hang = True
    http = await client(Ops("ledger", {"kafka": kafka}))
    response = await http.get("/live")
    assert response.status == 200
    assert (await response.json())["status"] == "alive"
    assert kafka.calls == 0


async def test_health_keeps_the_runbook_shape_and_answers_503_when_degraded(client: Client) -> None:
    kafka, database = Dependency(), Dependency()
    ops = Ops("gateway", {"kafka": kafka, "database": database}, cache_s=0)
    http = await client(ops)

    response = await http.get("/health")
    body = await response.json()
    assert response.status == 200
    assert {"status", "timestamp", "uptime"} <= set(body)
    assert (body["status"], body["kafka"], body["database"]) == ("ok", "connected", "connected")

    database.up = False
    response = await http.get("/health")
    body = await response.json()
    assert response.status == 503
    assert (body["status"], body["kafka"], body["database"]) == ("degraded", "connected", "disconnected")
    assert body["timestamp"].endswith("Z")


async def test_a_hanging_check_is_cut_by_its_timeout_and_reported_disconnected(client: Client) -> None:
    kafka = Dependency()
    kafka.hang = True
    http = await client(Ops("ledger", {"kafka": kafka}, timeout_s=0.05, cache_s=0))
    response = await http.get("/health")
    assert response.status == 503
    assert (await response.json())["kafka"] == "disconnected"


async def test_a_raising_check_counts_as_disconnected(client: Client) -> None:
    async def broken() -> bool:
        raise KeyError("pool not built yet")

    http = await client(Ops("dispatcher", {"database": broken}, cache_s=0))
    response = await http.get("/health")
    assert (response.status, (await response.json())["database"]) == (503, "disconnected")


async def test_ready_waits_for_start_up_then_follows_the_dependencies(client: Client) -> None:
    kafka = Dependency()
    ops = Ops("ledger", {"kafka": kafka}, cache_s=0)
    http = await client(ops)
    assert (await http.get("/ready")).status == 503
    ops.ready = True
    assert (await http.get("/ready")).status == 200
    kafka.up = False
    response = await http.get("/ready")
    assert response.status == 503
    assert await response.json() == {"status": "degraded", "failed": ["kafka"]}


async def test_probes_within_the_cache_period_share_one_round_of_checks(client: Client) -> None:
    kafka = Dependency()
    ops = Ops("ledger", {"kafka": kafka}, cache_s=3600)
    ops.ready = True
    http = await client(ops)
    statuses = [r.status for r in await asyncio.gather(*(http.get(p) for p in ["/ready", "/health"] * 5))]
    assert statuses == [200] * 10
    assert kafka.calls == 1


async def test_concurrent_probes_join_the_round_in_progress(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    release, entered = asyncio.Event(), asyncio.Event()
    calls = 0

    async def slow() -> bool:
        nonlocal calls
        calls += 1
        entered.set()
        await release.wait()
        return True

    # The check's own timeout is out of the way: the round must last until every probe has joined it.
    ops = Ops("ledger", {"database": slow}, cache_s=0, timeout_s=60)
    # Counts the probes that asked for the results: each joins (or starts) the round in the same step, with no
    # await before it, so once all five asked and the check is running, all five wait on that one round.
    asked = 0
    results = ops.dependencies.results

    async def counted() -> dict[str, bool]:
        nonlocal asked
        asked += 1
        return await results()

    monkeypatch.setattr(ops.dependencies, "results", counted)
    http = await client(ops)
    probes = [asyncio.create_task(http.get("/health")) for _ in range(5)]
    await entered.wait()
    await eventually(lambda: asked == 5, what="five probes waiting on the round")
    release.set()
    assert [(await p).status for p in probes] == [200] * 5
    assert calls == 1
