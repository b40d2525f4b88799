"""`hubctl webhooks failed|show|redrive`: the runbook's "Webhook Delivery Failures" and "Webhook Replay" steps.

`redrive` performs the runbook reset (status PENDING, retry_count 0, next_retry_at now, last_error NULL) with
an audit row per webhook; the dispatcher's sweep then sends each again, re-signed with a fresh timestamp and
`X-Replay: true`, under the same eventId.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, time, timedelta
from typing import Any, TypeVar

import asyncpg
import orjson

from hubctl.context import HubctlSettings
from hubctl.output import render

STATUSES = ("PENDING", "PROCESSING", "DELIVERED", "FAILED", "DEAD_LETTER")
REDRIVABLE = ("FAILED", "DEAD_LETTER")

T = TypeVar("T")


def json_flag(parser: argparse.ArgumentParser) -> None:
    """`--json` on a nested subcommand too, without resetting one given earlier on the line."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def time_bound(value: str, *, end: bool = False) -> datetime:
    """ISO date or datetime (UTC if naive). A bare date as an upper bound means the whole day."""
    if len(value) == 10:
        day = datetime.combine(datetime.fromisoformat(value).date(), time(), tzinfo=UTC)
        return day + timedelta(days=1) if end else day
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("webhooks", help="webhook deliveries in webhook_outbox: failures, details, redrive")
    nested = parser.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")

    failed = nested.add_parser("failed", help="FAILED and DEAD_LETTER webhooks, newest first (runbook query 1)")
    failed.add_argument("--status", choices=REDRIVABLE, help="only this status")
    failed.add_argument("--client", help="only this RGS client id")
    failed.add_argument("--limit", type=int, default=20)
    json_flag(failed)
    failed.set_defaults(handler=run_failed)

    show = nested.add_parser("show", help="one webhook with its attempt history")
    show.add_argument("id", help="webhook id (= eventId)")
    json_flag(show)
    show.set_defaults(handler=run_show)

    redrive = nested.add_parser("redrive", help="reset webhooks for redelivery (runbook reset)")
    redrive.add_argument("--id", dest="ids", action="append", default=[], help="webhook id (repeatable)")
    redrive.add_argument("--status", choices=REDRIVABLE, default="DEAD_LETTER")
    redrive.add_argument("--from", dest="since", type=time_bound, help="created at or after (date or datetime)")
    redrive.add_argument("--to", dest="until", type=lambda v: time_bound(v, end=True), help="created before")
    redrive.add_argument("--client", help="only this RGS client id")
    redrive.add_argument("--reason", default="redrive requested via hubctl")
    redrive.add_argument("--dry-run", action="store_true", help="list what would be reset, change nothing")
    json_flag(redrive)
    redrive.set_defaults(handler=run_redrive)


async def connect(settings: HubctlSettings) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(settings.database.url.get_secret_value(), timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise SystemExit(f"hubctl: cannot reach PostgreSQL: {type(exc).__name__}") from exc


async def failed_rows(
    conn: asyncpg.Connection, *, status: str | None, client: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id::text AS id, client_id, event_type, status, retry_count, next_retry_at, last_error, created_at
           FROM webhook_outbox
           WHERE status = ANY($1::text[]) AND ($2::text IS NULL OR client_id = $2)
           ORDER BY created_at DESC
           LIMIT $3""",
        [status] if status else list(REDRIVABLE),
        client,
        limit,
    )
    return [dict(r) for r in rows]


async def reset_for_redelivery(conn: asyncpg.Connection, event_id: str, *, actor: str, action: str, reason: str) -> str:
    """Reset one webhook the runbook way and audit it; returns what happened (`reset` or `skipped: ...`)."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT status, retry_count, last_error FROM webhook_outbox WHERE id = $1::uuid FOR UPDATE", event_id
        )
        if row is None:
            return "skipped: no such webhook"
        if row["status"] not in REDRIVABLE:
            return f"skipped: {row['status']}"
        await conn.execute(
            """UPDATE webhook_outbox
               SET status = 'PENDING', retry_count = 0, next_retry_at = NOW(), last_error = NULL, updated_at = now()
               WHERE id = $1::uuid""",
            event_id,
        )
        await audit(conn, event_id, actor=actor, action=action, reason=reason, before=dict(row))
    return "reset"


async def audit(
    conn: asyncpg.Connection, event_id: str, *, actor: str, action: str, reason: str, before: dict[str, Any] | None
) -> None:
    await conn.execute(
        """INSERT INTO audit_log (entity, entity_id, action, actor, before, after, reason)
           VALUES ('webhook_outbox', $1, $2, $3, $4::jsonb, $5::jsonb, $6)""",
        event_id,
        action,
        actor,
        orjson.dumps(before).decode() if before is not None else None,
        orjson.dumps({"status": "PENDING", "retryCount": 0}).decode(),
        reason,
    )


def run_db(go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one command's database work; a database-side error becomes a one-line message, not a traceback."""
    try:
        return asyncio.run(go())
    except asyncpg.UndefinedTableError as exc:
        raise SystemExit(f"hubctl: {exc} (run `hub-migrate` against DATABASE_URL first)") from exc
    except asyncpg.PostgresError as exc:
        raise SystemExit(f"hubctl: database error: {exc}") from exc


def run_failed(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async def go() -> list[dict[str, Any]]:
        conn = await connect(settings)
        try:
            return await failed_rows(conn, status=args.status, client=args.client, limit=args.limit)
        finally:
            await conn.close()

    rows = run_db(go)
    render(
        rows,
        as_json=args.json,
        columns=["id", "event_type", "status", "retry_count", "next_retry_at", "last_error"],
    )
    return 0


def run_show(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async def go() -> dict[str, Any] | None:
        conn = await connect(settings)
        try:
            row = await conn.fetchrow(
                """SELECT id::text AS id, transaction_id::text AS transaction_id, client_id, event_type, status,
                          retry_count, next_retry_at, last_error, correlation_id, created_at, updated_at,
                          delivered_at, attempts::text AS attempts, payload::text AS payload
                   FROM webhook_outbox WHERE id = $1::uuid""",
                args.id,
            )
        finally:
            await conn.close()
        if row is None:
            return None
        found = dict(row)
        found["attempts"] = orjson.loads(found["attempts"])
        found["payload"] = orjson.loads(found["payload"])
        return found

    found = run_db(go)
    if found is None:
        raise SystemExit(f"hubctl: no webhook {args.id}")
    if args.json:
        render(found, as_json=True)
    else:
        attempts = found.pop("attempts")
        found.pop("payload")
        render(found, as_json=False)
        render(attempts, as_json=False, columns=["attempt", "at", "status", "latencyMs", "outcome", "error"])
    return 0


def run_redrive(args: argparse.Namespace, settings: HubctlSettings) -> int:
    if not args.ids and args.since is None:
        raise SystemExit("hubctl: give --id or --from (a bulk redrive needs a time range)")

    async def go() -> list[dict[str, Any]]:
        conn = await connect(settings)
        try:
            ids = args.ids or [
                r["id"]
                for r in await conn.fetch(
                    """SELECT id::text AS id FROM webhook_outbox
                       WHERE status = $1 AND created_at >= $2 AND ($3::timestamptz IS NULL OR created_at < $3)
                         AND ($4::text IS NULL OR client_id = $4)
                       ORDER BY created_at""",
                    args.status,
                    args.since,
                    args.until,
                    args.client,
                )
            ]
            results = []
            for event_id in ids:
                if args.dry_run:
                    outcome = "would reset"
                else:
                    outcome = await reset_for_redelivery(
                        conn, event_id, actor=settings.hubctl_actor, action="webhook.redrive", reason=args.reason
                    )
                results.append({"id": event_id, "result": outcome})
            return results
        finally:
            await conn.close()

    results = run_db(go)
    render(results, as_json=args.json, columns=["id", "result"])
    return 0
