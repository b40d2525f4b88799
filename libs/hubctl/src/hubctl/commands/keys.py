"""`hubctl keys show|stuck|cleanup`: the runbook's "Idempotency Key Conflicts" steps."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from hubctl.context import HubctlSettings, connect
from hubctl.output import json_flag, render


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("keys", help="idempotency keys: show, stuck, cleanup")
    nested = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    show = nested.add_parser("show", help="a key with its transaction's status (runbook query 2)")
    show.add_argument("key")
    show.add_argument("--client", help="the RGS client id (scope); all scopes when omitted")
    json_flag(show)
    show.set_defaults(handler=run_show)

    stuck = nested.add_parser("stuck", help="PROCESSING keys older than --minutes (runbook query 1)")
    stuck.add_argument("--minutes", type=float, default=60.0)
    stuck.add_argument("--limit", type=int, default=50)
    json_flag(stuck)
    stuck.set_defaults(handler=run_stuck)

    cleanup = nested.add_parser("cleanup", help="delete expired keys now (runbook query 4; the ledger also does)")
    cleanup.add_argument("--dry-run", action="store_true", help="count them, delete nothing")
    json_flag(cleanup)
    cleanup.set_defaults(handler=run_cleanup)


async def _fetch(settings: HubctlSettings, query: str, *params: Any) -> list[dict[str, Any]]:
    conn = await connect(settings)
    try:
        return [dict(r) for r in await conn.fetch(query, *params)]
    finally:
        await conn.close()


def run_show(args: argparse.Namespace, settings: HubctlSettings) -> int:
    rows = asyncio.run(
        _fetch(
            settings,
            """SELECT ik.id::text AS id, ik.key, ik.scope, ik.status, ik.created_at, ik.expires_at,
                      t.ref_id, t.status AS transaction_status
               FROM idempotency_keys ik LEFT JOIN transactions t ON ik.transaction_id = t.id
               WHERE ik.key = $1 AND ($2::text IS NULL OR ik.scope = $2)""",
            args.key,
            args.client,
        )
    )
    render(
        rows,
        as_json=args.json,
        columns=["key", "scope", "status", "ref_id", "transaction_status", "created_at", "expires_at"],
    )
    return 0 if rows else 1


def run_stuck(args: argparse.Namespace, settings: HubctlSettings) -> int:
    rows = asyncio.run(
        _fetch(
            settings,
            """SELECT ik.id::text AS id, ik.key, ik.scope, ik.status, ik.created_at, t.ref_id,
                      t.status AS transaction_status
               FROM idempotency_keys ik LEFT JOIN transactions t ON ik.transaction_id = t.id
               WHERE ik.status = 'PROCESSING' AND ik.created_at < NOW() - make_interval(mins => $1)
               ORDER BY ik.created_at LIMIT $2""",
            args.minutes,
            args.limit,
        )
    )
    render(rows, as_json=args.json, columns=["key", "scope", "ref_id", "transaction_status", "created_at"])
    return 0


def run_cleanup(args: argparse.Namespace, settings: HubctlSettings) -> int:
    if args.dry_run:
        rows = asyncio.run(
            _fetch(settings, "SELECT count(*) AS expired FROM idempotency_keys WHERE expires_at < NOW()")
        )
        render({"expired": rows[0]["expired"], "deleted": 0}, as_json=args.json)
        return 0
    rows = asyncio.run(
        _fetch(
            settings,
            "WITH gone AS (DELETE FROM idempotency_keys WHERE expires_at < NOW() RETURNING 1) "
            "SELECT count(*) AS deleted FROM gone",
        )
    )
    render({"deleted": rows[0]["deleted"]}, as_json=args.json)
    return 0
