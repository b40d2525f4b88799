"""`hubctl webhooks failed|show|redrive`: the runbook's "Webhook Delivery Failures" and "Webhook Replay" steps.

`redrive` gets deliveries moving again from PostgreSQL state alone, so it works after the Kafka topics were lost:
- DEAD_LETTER rows get the runbook reset (status PENDING, retry_count 0, next_retry_at now, last_error NULL); the
  dispatcher's sweep sends each again, re-signed with a fresh timestamp and `X-Replay: true`, same eventId.
- FAILED rows (their retry record may be gone) and never-attempted PENDING rows get their next attempt
  re-published as a `WebhookRetry` record due now; the dispatcher's per-attempt claim keeps it to one POST. A
  FAILED row's next_retry_at becomes now; a PENDING row's stays NULL, so the sweep (which sends replays) leaves
  it to that record.
Every change writes an `audit_log` row: who (`HUBCTL_ACTOR`), when, which webhook and what was done. A bulk
redrive asks for confirmation (`--yes` skips it); `--dry-run` lists what would be done.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from hub_common import kafka
from hub_common.envelope import wrap
from hub_common.kafka import KafkaProducer, retry_topic
from hub_common.schemas import WebhookRetry
from hubctl import audit
from hubctl.bulk import Pacer, add_bulk_options, add_filters, confirm, selection
from hubctl.cli import Subparsers, command, group
from hubctl.context import HubctlSettings, connection
from hubctl.errors import HubctlError
from hubctl.output import progress, progress_wanted, render

STATUSES = ("PENDING", "PROCESSING", "DELIVERED", "FAILED", "DEAD_LETTER")
FAILED_STATUSES = ("FAILED", "DEAD_LETTER")
REDRIVABLE = ("PENDING", "FAILED", "DEAD_LETTER")
FAILED_COLUMNS = ["id", "event_type", "status", "retry_count", "next_retry_at", "last_error"]


def register(sub: Subparsers) -> None:
    nested = group(
        sub,
        "webhooks",
        help="webhook deliveries in webhook_outbox: failures, details, redrive",
        dest="webhooks_command",
    )

    failed = command(
        nested, "failed", help="FAILED and DEAD_LETTER webhooks, newest first (runbook query 1)", handler=run_failed
    )
    failed.add_argument("--status", dest="statuses", action="append", choices=FAILED_STATUSES, help="repeatable")
    add_filters(failed, time_of="created")
    failed.add_argument("--limit", type=int, default=20)

    show = command(nested, "show", help="one webhook with its attempt history", handler=run_show)
    show.add_argument("id", help="webhook id (= eventId)")

    redrive = command(
        nested, "redrive", help="send webhooks again from webhook_outbox (works without topics)", handler=run_redrive
    )
    redrive.add_argument("--id", dest="ids", action="append", default=[], help="webhook id (repeatable)")
    redrive.add_argument(
        "--status",
        dest="statuses",
        action="append",
        choices=REDRIVABLE,
        help="repeatable; default FAILED and DEAD_LETTER",
    )
    add_filters(redrive, time_of="created")
    add_bulk_options(redrive, default_rate=50.0, reason="redrive requested via hubctl")


# --- queries ----------------------------------------------------------------------------------------------------

_SELECT = """
    SELECT id::text AS id, client_id, event_type, status, retry_count, next_retry_at, last_error, created_at,
           payload->'data'->>'playerId' AS player_id
    FROM webhook_outbox
    WHERE status = ANY($1::text[])
      AND ($2::timestamptz IS NULL OR created_at >= $2)
      AND ($3::timestamptz IS NULL OR created_at < $3)
      AND ($4::text IS NULL OR event_type = $4)
      AND ($5::text IS NULL OR last_error ILIKE '%' || $5 || '%')
      AND ($6::text IS NULL OR payload->'data'->>'playerId' = $6)
      AND ($7::text IS NULL OR client_id = $7)
      AND (cardinality($8::uuid[]) = 0 OR id = ANY($8::uuid[]))"""


async def select_rows(
    conn: asyncpg.Connection, args: argparse.Namespace, statuses: Sequence[str], *, order: str, limit: int | None
) -> list[dict[str, Any]]:
    sql = f"{_SELECT} ORDER BY created_at {order}" + (" LIMIT $9" if limit is not None else "")
    params: list[Any] = [
        list(statuses),
        args.since,
        args.until,
        args.event_type,
        args.error,
        args.player,
        args.client,
        getattr(args, "ids", None) or [],
    ]
    rows = await conn.fetch(sql, *params, *([limit] if limit is not None else []))
    return [dict(r) for r in rows]


# --- redrive ----------------------------------------------------------------------------------------------------


class Redriver:
    """Acts on one row under a row lock; the audit row commits with the change or not at all."""

    def __init__(self, conn: asyncpg.Connection, producer: KafkaProducer, *, actor: audit.Actor, reason: str) -> None:
        self._conn = conn
        self._producer = producer
        self._actor = actor
        self._reason = reason
        self._ensured: set[str] = set()

    async def redrive(self, event_id: str, *, request: dict[str, Any]) -> str:
        async with self._conn.transaction():
            row = await self._conn.fetchrow(
                """SELECT status, retry_count, next_retry_at, last_error, client_id, event_type, correlation_id,
                          attempts->-1->>'replay' AS last_replay, jsonb_array_length(attempts) AS attempt_count
                   FROM webhook_outbox WHERE id = $1::uuid FOR UPDATE""",
                event_id,
            )
            if row is None:
                return "skipped: no such webhook"
            before = {k: row[k] for k in ("status", "retry_count", "next_retry_at", "last_error")}
            if row["status"] == "DEAD_LETTER":
                await reset_row(self._conn, event_id)
                after = {"status": "PENDING", "retryCount": 0, "request": request}
                await self._audit(event_id, before, after)
                return "reset"
            if row["status"] == "FAILED" or (row["status"] == "PENDING" and row["next_retry_at"] is None):
                attempt = row["retry_count"] + 1
                topic = await self._republish(event_id, row, attempt)
                # A never-attempted row keeps next_retry_at NULL: PENDING with a due time is the runbook's reset,
                # which the sweep takes and sends as a replay, racing the republished first attempt.
                await self._conn.execute(
                    """UPDATE webhook_outbox
                       SET next_retry_at = CASE WHEN status = 'FAILED' THEN now() END, updated_at = now()
                       WHERE id = $1::uuid""",
                    event_id,
                )
                after = {"status": row["status"], "republished": topic, "attempt": attempt, "request": request}
                await self._audit(event_id, before, after)
                return f"republished attempt {attempt}"
            if row["status"] == "PENDING":
                return "skipped: already due for the dispatcher's sweep"
            return f"skipped: {row['status']}"

    async def _republish(self, event_id: str, row: asyncpg.Record, attempt: int) -> str:
        # Any tier works (the record carries the attempt); the one the schedule would have used keeps lag readable.
        topic = retry_topic(max(1, attempt - 1))
        if topic not in self._ensured:
            await kafka.ensure_topics(self._producer.settings, [topic])
            self._ensured.add(topic)
        retry = WebhookRetry(
            event_id=event_id,
            client_id=row["client_id"],
            event_type=row["event_type"],
            attempt=attempt,
            due_at=datetime.now(UTC),
            replay=row["last_replay"] == "true",
        )
        await self._producer.send(topic, wrap(retry, correlation_id=row["correlation_id"] or event_id), key=event_id)
        return topic

    async def _audit(self, event_id: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        entry = audit.Entry(audit.WEBHOOK, event_id, audit.WEBHOOK_REDRIVE, self._reason, before, after)
        await audit.write(self._conn, self._actor, entry)


async def reset_row(conn: asyncpg.Connection, event_id: str) -> None:
    """The runbook's "Reset webhook for retry", unchanged in effect."""
    await conn.execute(
        """UPDATE webhook_outbox
           SET status = 'PENDING', retry_count = 0, next_retry_at = NOW(), last_error = NULL, updated_at = now()
           WHERE id = $1::uuid""",
        event_id,
    )


# --- commands ---------------------------------------------------------------------------------------------------


async def run_failed(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async with connection(settings) as conn:
        rows = await select_rows(conn, args, args.statuses or FAILED_STATUSES, order="DESC", limit=args.limit)
    render(rows, as_json=args.json, columns=FAILED_COLUMNS)
    return 0


async def run_show(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async with connection(settings) as conn:
        row = await conn.fetchrow(
            """SELECT id::text AS id, transaction_id::text AS transaction_id, client_id, event_type, status,
                      retry_count, next_retry_at, last_error, correlation_id, created_at, updated_at,
                      delivered_at, attempts::text AS attempts, payload::text AS payload
               FROM webhook_outbox WHERE id = $1::uuid""",
            args.id,
        )
    if row is None:
        raise HubctlError(f"no webhook {args.id}")
    found = dict(row)
    found["attempts"] = orjson.loads(found["attempts"])
    found["payload"] = orjson.loads(found["payload"])
    if args.json:
        render(found, as_json=True)
        return 0
    attempts = found.pop("attempts")
    found.pop("payload")
    render(found, as_json=False)
    render(attempts, as_json=False, columns=["attempt", "at", "status", "latencyMs", "outcome", "error"])
    return 0


async def run_redrive(args: argparse.Namespace, settings: HubctlSettings) -> int:
    if not args.ids and args.since is None:
        raise HubctlError("give --id or --from (a bulk redrive needs a time range)")
    pacer = Pacer(args.rate)
    # Named webhooks are looked at whatever their status, so the result says why one was skipped.
    statuses = args.statuses or list(STATUSES if args.ids else FAILED_STATUSES)
    async with connection(settings) as conn:
        rows = await select_rows(conn, args, statuses, order="ASC", limit=None)
        if args.dry_run or not rows:
            results = [{**_brief(r), "result": "would redrive"} for r in rows]
        else:
            actor = audit.actor(settings)
            confirm(f"Redrive {len(rows)} webhook(s)?", assume_yes=args.yes)
            results = await _redrive_all(conn, rows, settings=settings, args=args, actor=actor, pacer=pacer)
    render(results, as_json=args.json, columns=["id", "event_type", "status", "player_id", "result"])
    return 0


async def _redrive_all(
    conn: asyncpg.Connection,
    rows: list[dict[str, Any]],
    *,
    settings: HubctlSettings,
    args: argparse.Namespace,
    actor: audit.Actor,
    pacer: Pacer,
) -> list[dict[str, Any]]:
    producer = KafkaProducer(settings.kafka, client_id="hubctl")
    await producer.start()
    redriver = Redriver(conn, producer, actor=actor, reason=args.reason)
    request = selection(args)
    results = []
    try:
        with progress("redrive", len(rows), enabled=progress_wanted(args.progress)) as advance:
            for row in rows:
                await pacer.wait()
                outcome = await redriver.redrive(row["id"], request=request)
                results.append({**_brief(row), "result": outcome})
                advance()
    finally:
        await producer.stop()
    return results


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "event_type", "status", "player_id", "created_at", "last_error")
    return {k: row.get(k) for k in keys}
