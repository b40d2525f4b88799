"""`hubctl keys show|stuck|complete|cleanup`: the runbook's "Idempotency Key Conflicts" steps.

`complete` is the runbook's step 3 ("force complete stuck key, if transaction is done"): it only marks the key.
A key's status decides no money: the gateway answers a retried request from its transaction's status. So while
that transaction is still open the key is left alone (`hubctl tx resolve` finishes both, against the operator's
record); otherwise a PROCESSING key whose transaction is final (or gone) becomes COMPLETED, with an audit row.
"""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg

from hubctl import audit
from hubctl.bulk import add_change_options, confirm
from hubctl.cli import Subparsers, command, group
from hubctl.context import HubctlSettings, connection
from hubctl.errors import HubctlError
from hubctl.output import render

_KEY = """SELECT ik.id::text AS id, ik.key, ik.scope, ik.status, ik.created_at, ik.updated_at, ik.expires_at,
                 ik.transaction_id::text AS transaction_id, t.ref_id, t.status AS transaction_status
          FROM idempotency_keys ik LEFT JOIN transactions t ON ik.transaction_id = t.id"""


def register(sub: Subparsers) -> None:
    nested = group(sub, "keys", help="idempotency keys: show, stuck, complete, cleanup", dest="keys_command")

    show = command(nested, "show", help="a key with its transaction's status (runbook query 2)", handler=run_show)
    show.add_argument("key")
    show.add_argument("--client", help="the RGS client id (scope); all scopes when omitted")

    stuck = command(nested, "stuck", help="PROCESSING keys older than --minutes (runbook query 1)", handler=run_stuck)
    stuck.add_argument("--minutes", type=float, default=60.0)
    stuck.add_argument("--limit", type=int, default=50)

    complete = command(
        nested,
        "complete",
        help="mark a stuck PROCESSING key COMPLETED once its transaction is final (audited)",
        handler=run_complete,
    )
    complete.add_argument("key", help="the idempotency key (or the key row's id)")
    complete.add_argument("--client", help="the RGS client id (scope), when the key exists in several")
    add_change_options(complete, reason="")

    cleanup = command(
        nested, "cleanup", help="delete expired keys now (runbook query 4; the ledger also does)", handler=run_cleanup
    )
    cleanup.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add_change_options(cleanup, reason="expired keys cleaned up via hubctl")


async def _fetch(settings: HubctlSettings, query: str, *params: Any) -> list[dict[str, Any]]:
    async with connection(settings) as conn:
        return [dict(r) for r in await conn.fetch(query, *params)]


async def run_show(args: argparse.Namespace, settings: HubctlSettings) -> int:
    rows = await _fetch(
        settings, f"{_KEY} WHERE ik.key = $1 AND ($2::text IS NULL OR ik.scope = $2)", args.key, args.client
    )
    render(
        rows,
        as_json=args.json,
        columns=["key", "scope", "status", "ref_id", "transaction_status", "created_at", "expires_at"],
    )
    return 0 if rows else 1


async def run_stuck(args: argparse.Namespace, settings: HubctlSettings) -> int:
    rows = await _fetch(
        settings,
        f"""{_KEY} WHERE ik.status = 'PROCESSING' AND ik.created_at < NOW() - make_interval(mins => $1)
            ORDER BY ik.created_at LIMIT $2""",
        args.minutes,
        args.limit,
    )
    render(rows, as_json=args.json, columns=["key", "scope", "ref_id", "transaction_status", "created_at"])
    return 0


async def _locked_key(conn: asyncpg.Connection, key: str, client: str | None) -> asyncpg.Record:
    rows = await conn.fetch(
        f"""{_KEY} WHERE (ik.key = $1 OR ik.id::text = $1) AND ($2::text IS NULL OR ik.scope = $2)
            FOR UPDATE OF ik""",
        key,
        client,
    )
    if not rows:
        raise HubctlError(f"no idempotency key {key}" + (f" for client {client}" if client else ""))
    if len(rows) > 1:
        scopes = ", ".join(sorted(r["scope"] for r in rows))
        raise HubctlError(f"key {key} exists for several clients ({scopes}): give --client")
    return rows[0]


def _refusal(row: asyncpg.Record) -> str | None:
    if row["status"] != "PROCESSING":
        return f"the key is already {row['status']}: nothing to do"
    if row["transaction_status"] in ("PENDING", "PROCESSING"):
        return (
            f"its transaction {row['ref_id']} is still {row['transaction_status']}: "
            f"`hubctl tx resolve {row['ref_id']} --client {row['scope']}` finishes it (and its key) from the "
            "operator's record"
        )
    return None


async def run_complete(args: argparse.Namespace, settings: HubctlSettings) -> int:
    if not args.dry_run and not args.reason.strip():
        raise HubctlError("give --reason (recorded in the audit row)")
    actor = None if args.dry_run else audit.actor(settings)
    async with connection(settings) as conn, conn.transaction():
        row = await _locked_key(conn, args.key, args.client)
        result: dict[str, Any] = {"key": row["key"], "scope": row["scope"], "refId": row["ref_id"]}
        if (refusal := _refusal(row)) is not None:
            raise HubctlError(f"refused: {refusal}")
        if actor is None:
            render({**result, "result": "dry run: would mark the key COMPLETED"}, as_json=args.json)
            return 0
        await conn.execute(
            "UPDATE idempotency_keys SET status = 'COMPLETED', updated_at = now() WHERE id = $1::uuid", row["id"]
        )
        before = {"status": row["status"], "transactionStatus": row["transaction_status"]}
        entry = audit.Entry(audit.KEY, row["id"], audit.KEY_COMPLETE, args.reason, before, {"status": "COMPLETED"})
        await audit.write(conn, actor, entry)
    render({**result, "result": "completed"}, as_json=args.json)
    return 0


async def run_cleanup(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async with connection(settings) as conn:
        expired = await conn.fetchval("SELECT count(*) FROM idempotency_keys WHERE expires_at < NOW()")
        if args.dry_run or expired == 0:
            render({"expired": expired, "deleted": 0} if args.dry_run else {"deleted": 0}, as_json=args.json)
            return 0
        actor = audit.actor(settings)
        confirm(f"Delete {expired} expired idempotency key(s)?", assume_yes=args.yes)
        async with conn.transaction():
            gone = await conn.fetch(
                """DELETE FROM idempotency_keys WHERE expires_at < NOW()
                   RETURNING id::text AS id, key, scope, status, transaction_id::text AS transaction_id, expires_at"""
            )
            await audit.write_many(
                conn,
                actor,
                (audit.Entry(audit.KEY, g["id"], audit.KEY_CLEANUP, args.reason, dict(g), None) for g in gone),
            )
    render({"deleted": len(gone)}, as_json=args.json)
    return 0
