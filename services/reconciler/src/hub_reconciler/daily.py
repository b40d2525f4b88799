"""The daily date-range reconciliation, scheduled inside the service (runbook: "a daily run happens on its own").

With several replicas, a PostgreSQL advisory lock lets exactly one of them run a given day.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from hub_common.errors import HubError
from hub_reconciler.metrics import DAILY_RUNS, LAST_DAILY_SUCCESS

log = logging.getLogger(__name__)

_DAILY_LOCK = 7_246_318_004

RunRange = Callable[[date, date], Awaitable[dict[str, Any]]]


def next_run(now: datetime, at_utc: str) -> datetime:
    """The next `HH:MM` UTC strictly after `now`."""
    hour, minute = (int(part) for part in at_utc.split(":"))
    candidate = now.astimezone(UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
    return candidate if candidate > now else candidate + timedelta(days=1)


class DailyReconciliation:
    def __init__(
        self,
        run_range: RunRange,
        pool: asyncpg.Pool,
        *,
        at_utc: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._run_range = run_range
        self._pool = pool
        self._at_utc = at_utc
        self._clock = clock
        self._sleep = sleep

    async def run_once(self, day: date) -> dict[str, Any] | None:
        """Reconcile `day` unless another replica holds the lock; None when skipped."""
        async with self._pool.acquire() as conn:
            if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _DAILY_LOCK):
                log.info("daily reconciliation runs elsewhere", extra={"day": day.isoformat()})
                return None
            try:
                return await self._run_range(day, day)
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", _DAILY_LOCK)

    async def run_forever(self) -> None:
        while True:
            due = next_run(self._clock(), self._at_utc)
            await self._sleep(max((due - self._clock()).total_seconds(), 0.0))
            day = (due - timedelta(days=1)).date()
            try:
                summary = await self.run_once(day)
            except (HubError, OSError, asyncpg.PostgresError) as exc:
                # Alert "Reconciliation daily job failed" watches this counter.
                DAILY_RUNS.labels(outcome="failed").inc()
                log.error("daily reconciliation failed", extra={"day": day.isoformat(), "error": repr(exc)})
                continue
            if summary is not None:
                DAILY_RUNS.labels(outcome="ok").inc()
                LAST_DAILY_SUCCESS.set(self._clock().timestamp())
                log.info("daily reconciliation done", extra={"summary": summary})
