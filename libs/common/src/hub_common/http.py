"""What every service's HTTP side shares: /health, /ready, /metrics, background tasks, and running the app.

aiohttp's `run_app` turns SIGTERM/SIGINT into a graceful shutdown that runs every `cleanup_ctx` in reverse.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hub_common.errors import FatalError

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]
CleanupCtx = Callable[[web.Application], AsyncIterator[None]]


class Ops:
    """Liveness/readiness state of one service. `checks` name each dependency (`kafka`, `database`)."""

    def __init__(self, service: str, checks: dict[str, Check] | None = None) -> None:
        self.service = service
        self.checks: dict[str, Check] = dict(checks or {})
        self.started = time.monotonic()
        self.ready = False

    async def health(self, _: web.Request) -> web.Response:
        results = await asyncio.gather(*(check() for check in self.checks.values()), return_exceptions=True)
        body: dict[str, Any] = {
            "status": "ok",
            "service": self.service,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "uptime": round(time.monotonic() - self.started, 3),
        }
        for name, result in zip(self.checks, results, strict=True):
            ok = result is True
            body[name] = "connected" if ok else "disconnected"
            if not ok:
                body["status"] = "degraded"
        # Liveness stays 200 while degraded: restarting us does not bring Kafka back. /ready gates traffic.
        return web.json_response(body)

    async def readiness(self, _: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ready"})

    async def ready_while_running(self, _: web.Application) -> AsyncIterator[None]:
        """A cleanup_ctx, appended last: ready once every earlier start-up step succeeded, not while stopping."""
        self.ready = True
        yield
        self.ready = False

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/health", self.health)
        app.router.add_get("/ready", self.readiness)
        app.router.add_get("/metrics", metrics)


async def metrics(_: web.Request) -> web.Response:
    response = web.Response(body=generate_latest())
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return response


# Told why the service cannot go on; the production choice is `request_shutdown`, tests pass their own.
OnFatal = Callable[[str], None]
# A background task's body, called with the app once the cleanup contexts before it have run: resources they
# built are looked up there, by their AppKey (`lambda app: app[LEDGER].relay.run()`).
Task = Callable[[web.Application], Coroutine[Any, Any, None]]


def request_shutdown(reason: str) -> None:
    """Ask our own process to shut down gracefully (same path as SIGTERM)."""
    log.critical("stopping service", extra={"reason": reason})
    os.kill(os.getpid(), signal.SIGTERM)


def background(name: str, run: Task, *, on_fatal: OnFatal) -> CleanupCtx:
    """A cleanup_ctx that runs `run(app)` as a task for the app's lifetime; cancelled and awaited on cleanup.

    A task that dies with an exception calls `on_fatal`: a half-running service is worse than a restart.
    """

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run(app), name=name)

        def on_done(t: asyncio.Task[None]) -> None:
            if t.cancelled():
                return
            exc = t.exception()
            if exc is not None:
                kind = "fatal error" if isinstance(exc, FatalError) else "unexpected error"
                log.critical(f"background task {name} died: {kind}", exc_info=exc)
                on_fatal(f"{name}: {exc!r}")

        task.add_done_callback(on_done)
        yield
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task

    return ctx


def run(app: web.Application, *, host: str, port: int) -> None:
    web.run_app(app, host=host, port=port, print=None, access_log=None, shutdown_timeout=10)
