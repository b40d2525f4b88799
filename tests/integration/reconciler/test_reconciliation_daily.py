"""The daily run on PostgreSQL: every missed day in order, a day that cannot complete is retried and holds the
later ones back, one process at a time (the advisory lock), a day recorded OK never run twice (the in-service run
and the CronJob form together), and the CronJob form as a command with its exit codes."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from hub_common.reconciliation.report import RangeReport
from hub_reconciler.daily import _DAILY_LOCK, DailyRuns
from support.reconciliation_seed import feed_covered, hub_tx, op_id, op_record
from support.roles import RoleDbSettings

DAYS = [date(2024, 3, 1) + timedelta(days=n) for n in range(3)]
NOW = datetime(2024, 3, 4, 6, tzinfo=UTC)  # the three days are over and 00:30 has passed


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.fixture
async def pool(role_db_settings: RoleDbSettings) -> AsyncIterator[asyncpg.Pool]:
    # The reconciler's own role: the daily run needs no more than the service holds.
    pool = await asyncpg.create_pool(role_db_settings("reconciler").url.get_secret_value(), min_size=1, max_size=4)
    yield pool
    await pool.close()


async def seed(owner: asyncpg.Connection) -> None:
    for day in DAYS:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        await hub_tx(owner, f"bet-{day}", created=noon)
        await op_record(owner, op_id(f"bet-{day}"), created=noon)


def runs(pool: asyncpg.Pool, tmp_path: Path, *, clock: datetime = NOW) -> DailyRuns:
    report = RangeReport(pool, report_dir=tmp_path, clock=lambda: clock)

    async def run_day(day: date) -> dict[str, Any]:
        return await report.run(day, day)

    return DailyRuns(pool, run_day, at_utc="00:30", check_interval_s=3600, first_day=DAYS[0], clock=lambda: clock)


async def recorded(pool: asyncpg.Pool) -> dict[date, tuple[str, int]]:
    rows = await pool.fetch("SELECT day, status, attempts FROM reconciliation_runs ORDER BY day")
    return {r["day"]: (r["status"], r["attempts"]) for r in rows}


async def test_missed_days_run_in_order_and_a_failed_day_holds_the_later_ones(
    owner: asyncpg.Connection, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await seed(owner)
    # The feed has read up to the middle of the second day: that day cannot be complete yet.
    await feed_covered(owner, datetime(2024, 3, 2, 18, tzinfo=UTC))
    daily = runs(pool, tmp_path)
    assert await daily.due_days() == DAYS
    assert await daily.run_due() == [DAYS[0]]
    assert await recorded(pool) == {DAYS[0]: ("OK", 1), DAYS[1]: ("FAILED", 1)}
    # The gauge the overdue alert reads.
    assert (REGISTRY.get_sample_value("hub_reconciliation_daily_last_success_timestamp_seconds") or 0) > 0
    # The next check, once the feed has caught up: the failed day first, then the one it held back.
    await feed_covered(owner, NOW)
    assert await daily.due_days() == DAYS[1:]
    assert await daily.run_due() == DAYS[1:]
    assert await recorded(pool) == {DAYS[0]: ("OK", 1), DAYS[1]: ("OK", 2), DAYS[2]: ("OK", 1)}
    assert await daily.due_days() == []


async def test_one_process_at_a_time_and_never_the_same_day_twice(
    owner: asyncpg.Connection, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await seed(owner)
    await feed_covered(owner, NOW)
    daily = runs(pool, tmp_path)
    # Another replica (or the CronJob pod) holds the lock: nothing runs here, nothing is recorded.
    await owner.execute("SELECT pg_advisory_lock($1)", _DAILY_LOCK)
    assert await daily.run_due() is None
    assert await daily.run_day(DAYS[0], wait_s=0.2) == "busy"
    assert await recorded(pool) == {}
    # A run that is waited for: it starts once the other process lets go.
    waiting = asyncio.create_task(daily.run_day(DAYS[0], wait_s=30))
    await owner.execute("SELECT pg_advisory_unlock($1)", _DAILY_LOCK)
    assert await waiting == "ok"
    # The in-service run and the CronJob form each ask for the day again: it is not reconciled twice.
    assert await daily.run_day(DAYS[0]) == "done"
    assert await daily.run_due() == DAYS[1:]
    assert await daily.run_day(DAYS[2]) == "done"
    assert await recorded(pool) == {day: ("OK", 1) for day in DAYS}
    # Unless an SRE forces it.
    assert await daily.run_day(DAYS[0], force=True) == "ok"
    assert (await recorded(pool))[DAYS[0]] == ("OK", 2)


async def test_the_service_counts_the_runs_a_cronjob_records(
    owner: asyncpg.Connection, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await seed(owner)
    await feed_covered(owner, datetime(2024, 3, 2, 18, tzinfo=UTC))
    observer = runs(pool, tmp_path)
    seen = await observer.observe(None)  # what was recorded before the service started is not counted

    def counted(outcome: str) -> float:
        return REGISTRY.get_sample_value("hub_reconciliation_daily_runs_total", {"outcome": outcome}) or 0.0

    before = (counted("ok"), counted("failed"))
    # The CronJob form, another process: one day complete, the next not.
    assert await runs(pool, tmp_path).run_due() == [DAYS[0]]
    # Its own counters moved in this process too; the observer counts the two records once more.
    after_runs = (counted("ok"), counted("failed"))
    seen = await observer.observe(seen)
    assert (counted("ok") - after_runs[0], counted("failed") - after_runs[1]) == (1, 1)
    assert after_runs == (before[0] + 1, before[1] + 1)
    assert await observer.observe(seen) == seen  # nothing new, nothing counted
    assert (counted("ok"), counted("failed")) == (after_runs[0] + 1, after_runs[1] + 1)


async def test_the_cronjob_command_runs_a_day_once_and_says_so(
    owner: asyncpg.Connection, role_db_settings: RoleDbSettings, tmp_path: Path
) -> None:
    await seed(owner)
    await feed_covered(owner, NOW)
    env = {
        **os.environ,
        "DATABASE_URL": role_db_settings("reconciler").url.get_secret_value(),
        "RECONCILER_REPORT_DIR": str(tmp_path),
        "RECONCILER_DAILY_FEED_WAIT_S": "0",
        # No operator is called by the report, but the settings refuse to start without a real secret.
        "RECONCILER_OPERATOR__SECRET": secrets.token_urlsafe(32),
    }

    async def reconcile(*args: str) -> tuple[int, dict[str, Any]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub_reconciler", "reconcile", *args, env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return proc.returncode or 0, orjson.loads(out.decode().strip().splitlines()[-1])

    code, first = await reconcile("--day", DAYS[0].isoformat())
    assert (code, first["result"], first["status"]) == (0, "ok", "OK")
    assert first["report"].startswith(str(tmp_path))
    code, again = await reconcile("--day", DAYS[0].isoformat())
    assert (code, again["result"], again["report"]) == (0, "done", first["report"])
    await feed_covered(owner, datetime(2024, 3, 1, 6, tzinfo=UTC))  # a lagging feed: the forced rerun is incomplete
    code, forced = await reconcile("--day", DAYS[0].isoformat(), "--force")
    assert (code, forced["result"], forced["status"]) == (1, "failed", "FAILED")


async def test_the_cronjob_command_says_in_one_line_when_postgresql_cannot_be_reached(tmp_path: Path) -> None:
    env = {
        **os.environ,
        # A port nothing listens on: taken from a socket closed at once.
        "DATABASE_URL": f"postgresql://hub_reconciler@127.0.0.1:{_closed_port()}/hub",
        "RECONCILER_REPORT_DIR": str(tmp_path),
        "RECONCILER_OPERATOR__SECRET": secrets.token_urlsafe(32),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub_reconciler",
        "reconcile",
        "--day",
        "yesterday",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1
    assert out == b""
    assert lines == ["reconciler reconcile: cannot connect to PostgreSQL: ConnectionRefusedError"], lines


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port
