"""Periodic background jobs: `once()` every interval; a failed run is counted and logged, the next one tries
again. Run each as a `hub_common.http.background` task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress

import asyncpg
from prometheus_client import Counter

from hub_common.errors import InfrastructureError

log = logging.getLogger(__name__)

# A run that fails with one of these is retried at the next interval; anything else stops the service.
TRANSIENT = (InfrastructureError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def every(
    interval_s: float, once: Callable[[], Awaitable[None]], runs: Counter, wake: asyncio.Event | None = None
) -> None:
    """Run `once` now and then every `interval_s` (or as soon as `wake` is set), counting runs by result."""
    while True:
        try:
            await once()
            runs.labels("ok").inc()
        except TRANSIENT as exc:
            runs.labels("error").inc()
            log.warning("background job run failed", extra={"error": repr(exc)})
        if wake is None:
            await asyncio.sleep(interval_s)
            continue
        wake.clear()
        with suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), interval_s)
