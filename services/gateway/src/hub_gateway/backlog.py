"""Admission control: refuse new transactions while the ledger's backlog is over its bound (429)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Gauge

from hub_common.errors import HubError
from hub_gateway.errors import RateLimitedError

log = logging.getLogger(__name__)

BACKLOG = Gauge("gateway_backlog_transactions", "Transactions admitted but not yet final (PENDING/PROCESSING)")


class BacklogGuard:
    """Holds the last counted backlog; refreshed in the background so admission never waits on a count."""

    def __init__(self, max_backlog: int, retry_after_s: int) -> None:
        self._max = max_backlog
        self._retry_after_s = retry_after_s
        self.current = 0

    def check(self) -> None:
        if self._max and self.current > self._max:
            raise RateLimitedError(self.current, self._retry_after_s)

    def update(self, value: int) -> None:
        self.current = value
        BACKLOG.set(value)

    async def refresh_forever(self, count: Callable[[], Awaitable[int]], interval_s: float) -> None:
        while True:
            try:
                self.update(await count())
            except HubError as exc:
                # Keep the last value: with the database down, admission fails with 503 anyway.
                log.warning("backlog count failed", extra={"error": exc.message})
            await asyncio.sleep(interval_s)
