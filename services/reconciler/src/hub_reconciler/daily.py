"""The daily date-range report that never skips a day.

The last successful day is stored in PostgreSQL (reconciliation_runs): on start and every `check_interval_s` the
service runs every day since then, in order, once the day is over (and `at_utc` has passed). A day whose report
cannot be completed (the feed has not covered it, the database failed) is recorded FAILED and retried at the next
check; later days wait for it. A PostgreSQL advisory lock lets one replica, CronJob pod or command run at a time,
and a day already recorded OK is not run again (unless forced): the in-service run and the CronJob form never
reconcile the same day twice. The last-success gauge is read back from the database at start, so a restart does
not look like a failed day; when the CronJob form runs the days, the service counts the runs it records.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import asyncpg
import orjson

from hub_common.errors import HubError
from hub_reconciler.metrics import DAILY_RUNS, LAST_DAILY_SUCCESS

log = logging.getLogger(__name__)

_DAILY_LOCK = 7_246_318_004

RunDay = Callable[[date], Awaitable[dict[str, Any]]]
Sleep = Callable[[float], Awaitable[None]]
# ok: run and complete; failed: run, not complete (recorded FAILED); done: already OK, not run again;
# busy: another process held the lock for longer than we would wait.
DayResult = Literal["ok", "failed", "done", "busy"]
_LOCK_POLL_S = 1.0


def parse_at(at_utc: str) -> time:
    hour, minute = (int(part) for part in at_utc.split(":"))
    return time(hour, minute, tzinfo=UTC)


class DailyRuns:
    def __init__(
        self,
        pool: asyncpg.Pool,
        run_day: RunDay,
        *,
        at_utc: str,
        check_interval_s: float,
        first_day: date | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._pool = pool
        self._run_day = run_day
        self._at = parse_at(at_utc)
        self._check_interval_s = check_interval_s
        self._first_day = first_day
        self._clock = clock
        self._sleep = sleep

    def last_due_day(self) -> date:
        """The latest day whose run is due now: yesterday once `at_utc` has passed today, else the day before."""
        now = self._clock().astimezone(UTC)
        today = now.date()
        return today - timedelta(days=1 if now >= datetime.combine(today, self._at) else 2)

    async def restore_gauge(self) -> None:
        finished = await self._pool.fetchval("SELECT max(finished_at) FROM reconciliation_runs WHERE status = 'OK'")
        if isinstance(finished, datetime):
            LAST_DAILY_SUCCESS.set(finished.timestamp())

    async def due_days(self) -> list[date]:
        last_ok = await self._pool.fetchval("SELECT max(day) FROM reconciliation_runs WHERE status = 'OK'")
        until = self.last_due_day()
        first = last_ok + timedelta(days=1) if isinstance(last_ok, date) else (self._first_day or until)
        return [first + timedelta(days=n) for n in range((until - first).days + 1)]

    @asynccontextmanager
    async def exclusive(self, *, wait_s: float = 0.0) -> AsyncIterator[bool]:
        """Hold the daily-run lock for the block (True), or learn that another process holds it (False) once
        `wait_s` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        async with self._pool.acquire() as lock_conn:
            held = bool(await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", _DAILY_LOCK))
            while not held and loop.time() < deadline:
                # Polled rather than a blocking pg_advisory_lock: a wait must not outlive the command's timeout.
                await asyncio.sleep(min(_LOCK_POLL_S, max(deadline - loop.time(), 0.0)))
                held = bool(await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", _DAILY_LOCK))
            try:
                yield held
            finally:
                if held:
                    await lock_conn.execute("SELECT pg_advisory_unlock($1)", _DAILY_LOCK)

    async def run_due(self, *, wait_s: float = 0.0) -> list[date] | None:
        """Run every due day in order (stops at the first failure); the days that succeeded, None when another
        process holds the lock."""
        done: list[date] = []
        async with self.exclusive(wait_s=wait_s) as held:
            if not held:
                log.info("daily reconciliation runs elsewhere")
                return None
            for day in await self.due_days():
                if not await self.run_one(day):
                    break
                done.append(day)
        return done

    async def run_day(self, day: date, *, force: bool = False, wait_s: float = 0.0) -> DayResult:
        """Run one day (the CronJob form, `reconcile --day`) under the lock, unless it is recorded OK already."""
        async with self.exclusive(wait_s=wait_s) as held:
            if not held:
                return "busy"
            status = await self._pool.fetchval("SELECT status FROM reconciliation_runs WHERE day = $1", day)
            if status == "OK" and not force:
                log.info("day already reconciled", extra={"day": day.isoformat()})
                return "done"
            return "ok" if await self.run_one(day) else "failed"

    async def run_one(self, day: date) -> bool:
        """Run and record one day; True when its report is complete."""
        try:
            summary = await self._run_day(day)
        except (HubError, OSError, asyncpg.PostgresError) as exc:
            await self._record(day, "FAILED", None, None, f"{type(exc).__name__}: {exc}")
            return False
        if not summary.get("complete"):
            error = f"operator feed covers only up to {summary.get('feedCoveredTo')}"
            await self._record(day, "FAILED", summary.get("report"), summary, error)
            return False
        await self._record(day, "OK", summary.get("report"), summary, None)
        return True

    async def _record(
        self, day: date, status: str, report: str | None, summary: dict[str, Any] | None, error: str | None
    ) -> None:
        if status == "OK":
            DAILY_RUNS.labels(outcome="ok").inc()
            log.info("daily reconciliation done", extra={"day": day.isoformat(), "summary": summary})
        else:
            # Alert "Reconciliation daily job failed" watches this counter.
            DAILY_RUNS.labels(outcome="failed").inc()
            log.error("daily reconciliation failed", extra={"day": day.isoformat(), "error": error})
        finished = await self._pool.fetchval(
            """INSERT INTO reconciliation_runs (day, status, report, summary, error, finished_at)
               VALUES ($1, $2, $3, $4::jsonb, $5, now())
               ON CONFLICT (day) DO UPDATE SET status = $2, report = $3, summary = $4::jsonb, error = $5,
                   attempts = reconciliation_runs.attempts + 1, finished_at = now()
               RETURNING finished_at""",
            day,
            status,
            report,
            orjson.dumps(summary).decode() if summary is not None else None,
            error,
        )
        if status == "OK" and isinstance(finished, datetime):
            LAST_DAILY_SUCCESS.set(finished.timestamp())

    def _until_next_check(self) -> float:
        now = self._clock().astimezone(UTC)
        at_today = datetime.combine(now.date(), self._at)
        next_at = at_today if at_today > now else at_today + timedelta(days=1)
        return max(min((next_at - now).total_seconds(), self._check_interval_s), 0.0)

    async def run_forever(self) -> None:
        await self.restore_gauge()
        while True:
            try:
                await self.run_due()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                DAILY_RUNS.labels(outcome="failed").inc()
                log.error("daily reconciliation could not run", extra={"error": repr(exc)})
            await self._sleep(self._until_next_check())

    async def observe_forever(self) -> None:
        """When another process runs the days (the CronJob form), count the runs it records and keep the
        last-success gauge current, so the daily-run alerts watch the service either way."""
        seen: datetime | None = None
        while True:
            try:
                seen = await self.observe(seen)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("daily runs not observed; retried later", extra={"error": repr(exc)})
            await self._sleep(self._check_interval_s)

    async def observe(self, seen: datetime | None) -> datetime | None:
        """Count the runs recorded after `seen` (none on the first look: they happened before this process);
        returns the latest record's time."""
        if seen is None:
            await self.restore_gauge()
            latest = await self._pool.fetchval("SELECT max(finished_at) FROM reconciliation_runs")
            return latest if isinstance(latest, datetime) else datetime(1970, 1, 1, tzinfo=UTC)
        rows = await self._pool.fetch(
            "SELECT status, finished_at FROM reconciliation_runs WHERE finished_at > $1 ORDER BY finished_at", seen
        )
        for row in rows:
            DAILY_RUNS.labels(outcome="ok" if row["status"] == "OK" else "failed").inc()
            if row["status"] == "OK":
                LAST_DAILY_SUCCESS.set(row["finished_at"].timestamp())
        return rows[-1]["finished_at"] if rows else seen
