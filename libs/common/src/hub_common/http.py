"""What every service's HTTP side shares: /live, /ready, /health, /metrics, background tasks, and running the app.

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


class DependencyChecks:
    """Runs named dependency checks with a timeout each and caches the results for `cache_s`.

    Probes come from the kubelet, load balancers and people at once: one round of checks serves them all, and a
    round in progress is shared rather than repeated, so a slow dependency never piles up probe requests.
    """

    def __init__(self, checks: dict[str, Check], *, timeout_s: float = 1.0, cache_s: float = 2.0) -> None:
        self.checks = checks
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._results: dict[str, bool] = {}
        self._at = -float("inf")
        self._round: asyncio.Task[dict[str, bool]] | None = None

    async def results(self) -> dict[str, bool]:
        if time.monotonic() - self._at < self._cache_s:
            return self._results
        if self._round is None:
            self._round = asyncio.create_task(self._run(), name="dependency-checks")
            self._round.add_done_callback(self._finished)
        # Shielded: a probe that gives up (client timeout) must not cancel the round other probes wait for.
        return await asyncio.shield(self._round)

    def _finished(self, task: asyncio.Task[dict[str, bool]]) -> None:
        self._round = None
        if not task.cancelled() and task.exception() is None:
            self._results, self._at = task.result(), time.monotonic()

    async def _run(self) -> dict[str, bool]:
        names = list(self.checks)
        outcomes = await asyncio.gather(*(self._one(name) for name in names))
        results = dict(zip(names, outcomes, strict=True))
        for name, ok in results.items():
            if not ok and self._results.get(name, True):
                log.warning("dependency check failed", extra={"dependency": name})
        return results

    async def _one(self, name: str) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await self.checks[name]() is True
        # A check that times out or raises (its dependency half-gone) reports "not reachable" like a False.
        except Exception as exc:
            log.debug("dependency check raised", extra={"dependency": name, "error": repr(exc)})
            return False


class Ops:
    """Liveness, readiness and health of one service. `checks` name each dependency (`kafka`, `database`).

    - `GET /live` (the kubelet's liveness probe): answers from the event loop and waits on nothing, so an
      outage of Kafka or PostgreSQL never gets a healthy process restarted.
    - `GET /ready` (readiness): 503 until start-up finished and while stopping or while a dependency check fails.
    - `GET /health` (people, `hubctl health`): the runbook's shape; 200 when every dependency is connected,
      503 with `"status": "degraded"` otherwise. Not a liveness probe.
    Readiness and health share one cached round of checks (`DependencyChecks`), each bounded by a timeout.
    """

    def __init__(
        self, service: str, checks: dict[str, Check] | None = None, *, timeout_s: float = 1.0, cache_s: float = 2.0
    ) -> None:
        self.service = service
        self.dependencies = DependencyChecks(dict(checks or {}), timeout_s=timeout_s, cache_s=cache_s)
        self.started = time.monotonic()
        self.ready = False

    @property
    def checks(self) -> dict[str, Check]:
        return self.dependencies.checks

    def _uptime(self) -> float:
        return round(time.monotonic() - self.started, 3)

    async def live(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "alive", "service": self.service, "uptime": self._uptime()})

    async def health(self, _: web.Request) -> web.Response:
        results = await self.dependencies.results()
        healthy = all(results.values())
        body: dict[str, Any] = {
            "status": "ok" if healthy else "degraded",
            "service": self.service,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "uptime": self._uptime(),
        }
        body.update({name: "connected" if ok else "disconnected" for name, ok in results.items()})
        return web.json_response(body, status=200 if healthy else 503)

    async def readiness(self, _: web.Request) -> web.Response:
        if not self.ready:
            return web.json_response({"status": "starting"}, status=503)
        results = await self.dependencies.results()
        failed = sorted(name for name, ok in results.items() if not ok)
        if failed:
            return web.json_response({"status": "degraded", "failed": failed}, status=503)
        return web.json_response({"status": "ready"})

    async def ready_while_running(self, _: web.Application) -> AsyncIterator[None]:
        """A cleanup_ctx, appended last: ready once every earlier start-up step succeeded, not while stopping."""
        self.ready = True
        yield
        self.ready = False

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/live", self.live)
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


def closing(close: Callable[[], Awaitable[None]]) -> CleanupCtx:
    """A cleanup_ctx that calls `close()` when the app stops: for a resource built with the app (a probe)."""

    async def ctx(_: web.Application) -> AsyncIterator[None]:
        yield
        await close()

    return ctx


def run(app: web.Application, *, host: str, port: int) -> None:
    web.run_app(app, host=host, port=port, print=None, access_log=None, shutdown_timeout=10)
