"""`hubctl stats`: the runbook's "Useful SQL Queries" and its rate-limiting analysis, in one report.

Each query is the runbook's, unchanged but for the window (the tables keep the runbook's names and columns):
the 24 h sections follow `--hours`, top players `--days` (the runbook's 7), the transaction rate per minute
`--rate-minutes` (its last hour) and the per-second bursts `--burst-minutes` (its last 5 minutes).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from hubctl.cli import Subparsers, command
from hubctl.context import HubctlSettings, connection
from hubctl.output import render, section


@dataclass(frozen=True)
class Query:
    sql: str
    columns: list[str]
    # The `stats` option that gives $1, in the unit the SQL expects.
    window: str


QUERIES: dict[str, Query] = {
    "transactions_by_status": Query(
        """SELECT status, COUNT(*) AS count, AVG(amount_cents)::float8 AS avg_amount
           FROM transactions WHERE created_at > NOW() - make_interval(hours => $1)
           GROUP BY status ORDER BY status""",
        ["status", "count", "avg_amount"],
        "hours",
    ),
    "top_players": Query(
        """SELECT player_id, COUNT(*) AS count, SUM(amount_cents) AS total_volume
           FROM transactions WHERE created_at > NOW() - make_interval(days => $1) AND status = 'COMPLETED'
           GROUP BY player_id ORDER BY total_volume DESC LIMIT 10""",
        ["player_id", "count", "total_volume"],
        "days",
    ),
    "duration_seconds": Query(
        """SELECT AVG(EXTRACT(EPOCH FROM (completed_at - created_at)))::float8 AS avg_duration_seconds,
                  MIN(EXTRACT(EPOCH FROM (completed_at - created_at)))::float8 AS min_duration,
                  MAX(EXTRACT(EPOCH FROM (completed_at - created_at)))::float8 AS max_duration
           FROM transactions WHERE completed_at IS NOT NULL AND created_at > NOW() - make_interval(hours => $1)""",
        ["avg_duration_seconds", "min_duration", "max_duration"],
        "hours",
    ),
    "failed_transactions": Query(
        """SELECT ref_id, player_id, status, reason, created_at FROM transactions
           WHERE status IN ('FAILED', 'REJECTED') AND created_at > NOW() - make_interval(hours => $1)
           ORDER BY created_at DESC LIMIT 20""",
        ["ref_id", "player_id", "status", "reason", "created_at"],
        "hours",
    ),
    "transaction_rate": Query(
        """SELECT DATE_TRUNC('minute', created_at) AS minute, COUNT(*) AS transaction_count
           FROM transactions WHERE created_at > NOW() - make_interval(mins => $1)
           GROUP BY minute ORDER BY minute DESC""",
        ["minute", "transaction_count"],
        "rate_minutes",
    ),
    "bursts": Query(
        """SELECT DATE_TRUNC('second', created_at) AS second, COUNT(*) AS count
           FROM transactions WHERE created_at > NOW() - make_interval(mins => $1)
           GROUP BY second HAVING COUNT(*) > 1 ORDER BY count DESC, second DESC LIMIT 20""",
        ["second", "count"],
        "burst_minutes",
    ),
    "webhook_delivery": Query(
        """SELECT status, COUNT(*) AS count,
                  ROUND(COUNT(*) * 100.0 / SUM(COUNT(*)) OVER (), 2)::float8 AS percentage
           FROM webhook_outbox WHERE created_at > NOW() - make_interval(hours => $1)
           GROUP BY status ORDER BY status""",
        ["status", "count", "percentage"],
        "hours",
    ),
    "webhook_retries": Query(
        """SELECT AVG(retry_count)::float8 AS avg_retries, MAX(retry_count) AS max_retries
           FROM webhook_outbox WHERE status = 'DELIVERED' AND created_at > NOW() - make_interval(hours => $1)""",
        ["avg_retries", "max_retries"],
        "hours",
    ),
}


def register(sub: Subparsers) -> None:
    parser = command(sub, "stats", help="transaction and webhook statistics (runbook useful queries)", handler=run)
    parser.add_argument("--hours", type=int, default=24, help="look-back window of most sections (default 24)")
    parser.add_argument("--days", type=int, default=7, help="look-back window of top players (default 7)")
    parser.add_argument("--rate-minutes", type=int, default=60, help="transactions per minute over (default 60)")
    parser.add_argument("--burst-minutes", type=int, default=5, help="seconds with >1 transaction over (default 5)")


async def gather(settings: HubctlSettings, args: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    async with connection(settings) as conn:
        return {
            name: [dict(r) for r in await conn.fetch(q.sql, getattr(args, q.window))] for name, q in QUERIES.items()
        }


async def run(args: argparse.Namespace, settings: HubctlSettings) -> int:
    report = await gather(settings, args)
    if args.json:
        render(report, as_json=True)
        return 0
    for name, rows in report.items():
        section(name)
        render(rows, as_json=False, columns=QUERIES[name].columns)
    return 0
