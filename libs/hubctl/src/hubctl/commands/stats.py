"""`hubctl stats`: the runbook's "Useful SQL Queries" (transactions and webhooks) in one report."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from hubctl.context import HubctlSettings, connect
from hubctl.output import render

# Each query is the runbook's, unchanged but for the window: the tables keep the runbook's names and columns.
QUERIES: dict[str, tuple[str, list[str]]] = {
    "transactions_by_status": (
        """SELECT status, COUNT(*) AS count, AVG(amount_cents)::float8 AS avg_amount
           FROM transactions WHERE created_at > NOW() - make_interval(hours => $1)
           GROUP BY status ORDER BY status""",
        ["status", "count", "avg_amount"],
    ),
    "top_players": (
        """SELECT player_id, COUNT(*) AS count, SUM(amount_cents) AS total_volume
           FROM transactions WHERE created_at > NOW() - make_interval(hours => $1) AND status = 'COMPLETED'
           GROUP BY player_id ORDER BY total_volume DESC LIMIT 10""",
        ["player_id", "count", "total_volume"],
    ),
    "duration_seconds": (
        """SELECT AVG(EXTRACT(EPOCH FROM (completed_at - created_at)))::float8 AS avg_duration_seconds,
                  MIN(EXTRACT(EPOCH FROM (completed_at - created_at)))::float8 AS min_duration,
                  MAX(EXTRACT(EPOCH FROM (completed_at - created_at)))::float8 AS max_duration
           FROM transactions WHERE completed_at IS NOT NULL AND created_at > NOW() - make_interval(hours => $1)""",
        ["avg_duration_seconds", "min_duration", "max_duration"],
    ),
    "failed_transactions": (
        """SELECT ref_id, player_id, status, reason, created_at FROM transactions
           WHERE status IN ('FAILED', 'REJECTED') AND created_at > NOW() - make_interval(hours => $1)
           ORDER BY created_at DESC LIMIT 20""",
        ["ref_id", "player_id", "status", "reason", "created_at"],
    ),
    "webhook_delivery": (
        """SELECT status, COUNT(*) AS count,
                  ROUND(COUNT(*) * 100.0 / SUM(COUNT(*)) OVER (), 2)::float8 AS percentage
           FROM webhook_outbox WHERE created_at > NOW() - make_interval(hours => $1)
           GROUP BY status ORDER BY status""",
        ["status", "count", "percentage"],
    ),
    "webhook_retries": (
        """SELECT AVG(retry_count)::float8 AS avg_retries, MAX(retry_count) AS max_retries
           FROM webhook_outbox WHERE status = 'DELIVERED' AND created_at > NOW() - make_interval(hours => $1)""",
        ["avg_retries", "max_retries"],
    ),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("stats", help="transaction and webhook statistics (runbook useful queries)")
    parser.add_argument("--hours", type=int, default=24, help="look-back window (default 24)")
    parser.set_defaults(handler=run)


async def gather(settings: HubctlSettings, hours: int) -> dict[str, list[dict[str, Any]]]:
    conn = await connect(settings)
    try:
        return {name: [dict(r) for r in await conn.fetch(sql, hours)] for name, (sql, _) in QUERIES.items()}
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: HubctlSettings) -> int:
    report = asyncio.run(gather(settings, args.hours))
    if args.json:
        render(report, as_json=True)
        return 0
    for name, rows in report.items():
        print(f"\n{name}:")
        render(rows, as_json=False, columns=QUERIES[name][1])
    return 0
