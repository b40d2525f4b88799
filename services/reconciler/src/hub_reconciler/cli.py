"""`python -m hub_reconciler reconcile ...`: the daily report as a one-shot command (the Kubernetes CronJob form).

    reconcile --day yesterday      run (and record) one day, as the in-service daily run would
    reconcile --day D --force      run it again although it is recorded OK (a new report; the old one stays)
    reconcile --catch-up           run every day since the last successful one, in order
The same advisory lock as the in-service daily run: a run elsewhere is waited for (`--lock-wait`), and a day it
recorded OK is not run again. Exit 0 when every day asked for is reconciled (now or before), 1 when one failed,
is incomplete or the lock stayed taken, 2 on bad arguments or settings.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import asyncpg
import orjson

from hub_common import db
from hub_common.errors import HubError
from hub_common.service import load_settings
from hub_reconciler.app import SERVICE, SESSION, daily_runs
from hub_reconciler.settings import ReconcilerSettings


def parse_day(text: str) -> date:
    today = datetime.now(UTC).date()
    if text == "yesterday":
        return today - timedelta(days=1)
    if text == "today":
        return today
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (YYYY-MM-DD, today or yesterday)") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hub_reconciler reconcile", description=__doc__)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--day", type=parse_day, metavar="YYYY-MM-DD|yesterday")
    which.add_argument("--catch-up", action="store_true", help="every day since the last successful run")
    parser.add_argument("--force", action="store_true", help="with --day: run it even if it is recorded OK")
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=1800.0,
        metavar="SECONDS",
        help="how long to wait for a run elsewhere (the service's daily run, another pod) to finish (1800)",
    )
    return parser


async def _run(settings: ReconcilerSettings, args: argparse.Namespace) -> int:
    pool = await db.create_pool(settings.database, server_settings=SESSION)
    try:
        runs = daily_runs(settings, pool)
        if args.catch_up:
            due = await runs.due_days()
            done = await runs.run_due(wait_s=args.lock_wait)
            result = {"due": [d.isoformat() for d in due], "done": [d.isoformat() for d in done or []]}
            print(orjson.dumps(result | {"busy": done is None}).decode())
            return 0 if done is not None and len(done) == len(due) else 1
        outcome = await runs.run_day(args.day, force=args.force, wait_s=args.lock_wait)
        row = await pool.fetchrow(
            "SELECT status, report, summary, error FROM reconciliation_runs WHERE day = $1", args.day
        )
        record = dict(row) if row is not None else {}
        print(orjson.dumps({"day": args.day.isoformat(), "result": outcome} | record, default=str).decode())
        return 0 if outcome in ("ok", "done") else 1
    finally:
        await pool.close()


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings(SERVICE, ReconcilerSettings)
    try:
        return asyncio.run(_run(settings, args))
    except HubError as exc:
        # A CronJob's log is read by a person: one line saying what failed, no traceback (exit 1: run it again).
        print(f"{SERVICE} reconcile: {exc}", file=sys.stderr)
        return 1
    except (OSError, TimeoutError) as exc:
        print(f"{SERVICE} reconcile: cannot reach PostgreSQL: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except asyncpg.PostgresError as exc:
        print(f"{SERVICE} reconcile: PostgreSQL refused: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
