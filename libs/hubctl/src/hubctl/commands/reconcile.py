"""`hubctl reconcile --from DATE --to DATE`: the date-range reconciliation, a CSV report plus a summary file.

Runs the shared report (`hub_common.reconciliation`) against PostgreSQL: the Hub's transactions against the operator
records the reconciler's feed has stored. No operator call is made; if the feed has not yet read up to the end of
the range (or now), the command waits up to `--wait` seconds for it, then judges what the feed covers.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from hub_common.errors import HubError
from hub_common.reconciliation.report import RangeReport, day_bounds, iso, wait_for_coverage
from hubctl.cli import Subparsers, command
from hubctl.context import HubctlSettings, create_pool
from hubctl.errors import HubctlError
from hubctl.output import emit_json, fields, progress, progress_wanted


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a day: {text!r} (YYYY-MM-DD)") from None


def register(sub: Subparsers) -> None:
    help_ = "reconcile Hub and operator records for a date range (UTC days)"
    parser = command(sub, "reconcile", help=help_, handler=run)
    parser.add_argument("--from", dest="first", type=_day, required=True, metavar="YYYY-MM-DD")
    parser.add_argument("--to", dest="last", type=_day, required=True, metavar="YYYY-MM-DD")
    parser.add_argument(
        "--wait", type=float, default=120.0, metavar="SECONDS", help="wait this long for the operator feed (120)"
    )
    parser.add_argument("--out", type=Path, default=Path("reconciliation-reports"), help="report directory")
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr even when not a terminal")


async def run(args: argparse.Namespace, settings: HubctlSettings) -> int:
    if args.last < args.first:
        raise HubctlError("--to is before --from")
    _, end = day_bounds(args.first, args.last)
    pool = await create_pool(settings)
    try:
        target = min(end, datetime.now(UTC))
        covered = await wait_for_coverage(pool, target, timeout_s=args.wait)
        if covered is not None and covered < target:
            print(f"hubctl: the operator feed covers up to {iso(covered)}; judging what it covers", file=sys.stderr)
        report = RangeReport(pool, report_dir=args.out)
        total = report.slice_count(args.first, args.last)
        with progress("reconcile", total, enabled=progress_wanted(args.progress)) as step:
            summary = await report.run(args.first, args.last, progress=lambda _done, _total: step())
    except HubError as exc:
        raise HubctlError(f"reconcile failed: {exc.message}") from exc
    finally:
        await pool.close()
    if args.json:
        emit_json(summary)
        return 0
    # Full paths, never cut: the SRE copies them.
    fields({k: v for k, v in summary.items() if k not in ("totals", "byKind")} | {"byKind": summary["byKind"] or "-"})
    if not summary["complete"]:
        print("note: not every transaction of the range could be judged yet; re-run later", file=sys.stderr)
    return 0
