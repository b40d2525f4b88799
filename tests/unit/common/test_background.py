"""`hub_common.http.background`: a task for the app's lifetime that finds late-bound resources by AppKey, and
reports its death to `on_fatal` instead of signalling the process itself."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from hub_common.http import background
from support.waits import eventually

STARTED = web.AppKey("started", asyncio.Event)


async def test_a_task_sees_what_earlier_contexts_built_and_is_cancelled_on_cleanup() -> None:
    app = web.Application()
    reasons: list[str] = []

    async def run(app: web.Application) -> None:
        app[STARTED].set()
        await asyncio.Event().wait()

    steps = background("worker", run, on_fatal=reasons.append)(app)
    app[STARTED] = asyncio.Event()  # built by an earlier cleanup context, after the task was declared
    await anext(steps)
    await eventually(app[STARTED].is_set, what="the task to start")
    await anext(steps, None)
    assert reasons == []


async def test_a_task_that_dies_tells_on_fatal_why() -> None:
    app = web.Application()
    reasons: list[str] = []

    async def run(_: web.Application) -> None:
        raise RuntimeError("boom")

    steps = background("worker", run, on_fatal=reasons.append)(app)
    await anext(steps)
    await eventually(lambda: bool(reasons))
    assert reasons == ["worker: RuntimeError('boom')"]
    with pytest.raises(RuntimeError, match="boom"):  # and cleanup does not hide it
        await anext(steps, None)
