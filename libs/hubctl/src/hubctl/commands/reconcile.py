"""`hubctl reconcile --from DATE --to DATE`: the date-range reconciliation, a CSV report plus a summary file.

Runs the shared report (`hub_common.reconciliation`) against PostgreSQL: the Hub's transactions against the operator
records the reconciler's feed has stored. No operator call is made; if the feed has not yet read up to the end of
the range (or now), the command waits up to `--wait` seconds for it, then reports what it can judge.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg

from hub_common.errors import HubError
from hub_common.reconciliation.report import RangeReport, day_bounds, iso, wait_for_coverage
from hubctl.context import HubctlSettings
from hubctl.output import emit_json, render
from hubctl.progress import Progress, wanted


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (YYYY-MM-DD)") from None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("reconcile", help="reconcile Hub and operator records for a date range (UTC days)")
    parser.add_argument("--from", dest="first", type=_day, required=True, metavar="YYYY-MM-DD")
    parser.add_argument("--to", dest="last", type=_day, required=True, metavar="YYYY-MM-DD")
    parser.add_argument(
        "--wait", type=float, default=120.0, metavar="SECONDS", help="wait this long for the operator feed (120)"
    )
    parser.add_argument("--out", type=Path, default=Path("reconciliation-reports"), help="report directory")
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr even when not a terminal")
    parser.set_defaults(handler=run)


async def _reconcile(args: argparse.Namespace, settings: HubctlSettings) -> dict[str, Any]:
    _, end = day_bounds(args.first, args.last)
    try:
        pool = await asyncpg.create_pool(settings.database.url.get_secret_value(), min_size=1, max_size=2, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise SystemExit(f"hubctl: cannot reach PostgreSQL: {type(exc).__name__}") from exc
    try:
        target = min(end, datetime.now(UTC))
        covered = await wait_for_coverage(pool, target, timeout_s=args.wait)
        if covered is not None and covered < target:
            print(f"hubctl: the operator feed covers up to {iso(covered)}; judging what it covers", file=sys.stderr)
        bar = Progress("reconcile", 0, enabled=False)

        def progress(done: int, total: int) -> None:
            nonlocal bar
            if bar.done == 0 and done == 1:
                bar = Progress("reconcile", total, enabled=wanted(args.progress))
            bar.advance(done - bar.done)

        summary = await RangeReport(pool, report_dir=args.out).run(args.first, args.last, progress=progress)
        bar.close()
        return summary
    finally:
        await pool.close()


def run(args: argparse.Namespace, settings: HubctlSettings) -> int:
    if args.last < args.first:
        raise SystemExit("hubctl: --to is before --from")
    try:
        summary = asyncio.run(_reconcile(args, settings))
    except asyncpg.UndefinedTableError as exc:
        raise SystemExit(f"hubctl: database not migrated ({exc}); run hub-migrate") from exc
    except (HubError, OSError, asyncpg.PostgresError) as exc:
        raise SystemExit(f"hubctl: reconcile failed: {exc}") from exc
    if args.json:
        emit_json(summary)
        return 0
    render({k: v for k, v in summary.items() if k not in ("report", "summary", "totals", "byKind")}, as_json=False)
    for kind, count in summary["byKind"].items():
        print(f"  {kind}: {count}")
    # Full paths, never cut: the SRE copies them.
    print(f"report   {summary['report']}")
    print(f"summary  {summary['summary']}")
    if not summary["complete"]:
        print("note: not every transaction of the range could be judged yet; re-run later", file=sys.stderr)
    return 0
