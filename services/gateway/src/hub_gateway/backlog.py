"""Admission control: refuse new transactions while the ledger's backlog is over its bound (429)."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from prometheus_client import Gauge

from hub_common.errors import HubError
from hub_gateway.errors import RateLimitedError

log = logging.getLogger(__name__)

BACKLOG = Gauge("gateway_backlog_transactions", "Transactions admitted but not yet final (PENDING/PROCESSING)")


@dataclass(frozen=True)
class RetryAfterPolicy:
    """How long a refused client should wait: the ledger drains the backlog at the operator's rate, no faster."""

    operator_rate_per_minute: int
    min_s: int
    max_s: int

    def seconds(self, backlog: int, bound: int) -> int:
        # Admission resumes once the backlog is back at its bound, so only the excess has to drain first.
        rate_per_s = self.operator_rate_per_minute / 60
        drain_s = math.ceil(max(backlog - bound, 1) / rate_per_s)
        return max(self.min_s, min(self.max_s, drain_s))


class BacklogGuard:
    """Holds the last counted backlog; refreshed in the background so admission never waits on a count."""

    def __init__(self, max_backlog: int, retry_after: RetryAfterPolicy) -> None:
        self._max = max_backlog
        self._retry_after = retry_after
        self.current = 0

    @property
    def refusing(self) -> bool:
        return bool(self._max) and self.current > self._max

    def check(self) -> None:
        if self.refusing:
            raise RateLimitedError(self.current, self._retry_after.seconds(self.current, self._max))

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
