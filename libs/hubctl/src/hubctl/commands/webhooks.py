"""`hubctl webhooks failed|show|redrive`: the runbook's "Webhook Delivery Failures" and "Webhook Replay" steps.

`redrive` gets deliveries moving again from PostgreSQL state alone, so it works after the Kafka topics were lost:
- DEAD_LETTER rows get the runbook reset (status PENDING, retry_count 0, next_retry_at now, last_error NULL); the
  dispatcher's sweep sends each again, re-signed with a fresh timestamp and `X-Replay: true`, same eventId.
- FAILED rows (their retry record may be gone) and never-attempted PENDING rows get their next attempt
  re-published as a `WebhookRetry` record due now; the dispatcher's per-attempt claim keeps it to one POST.
Every change writes an `audit_log` row: who (`HUBCTL_ACTOR`), when, which webhook and what was done.
"""

from __future__ import annotations

import argparse
import asyncio
import time as clock
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any, TypeVar

import asyncpg
import orjson

from hub_common import kafka
from hub_common.envelope import wrap
from hub_common.errors import InfrastructureError
from hub_common.kafka import KafkaProducer, retry_topic
from hub_common.schemas import WebhookRetry
from hubctl.context import HubctlSettings, connect
from hubctl.output import json_flag, render
from hubctl.progress import Progress, wanted

STATUSES = ("PENDING", "PROCESSING", "DELIVERED", "FAILED", "DEAD_LETTER")
FAILED_STATUSES = ("FAILED", "DEAD_LETTER")
REDRIVABLE = ("PENDING", "FAILED", "DEAD_LETTER")
FAILED_COLUMNS = ["id", "event_type", "status", "retry_count", "next_retry_at", "last_error"]

T = TypeVar("T")


def time_bound(value: str, *, end: bool = False) -> datetime:
    """ISO date or datetime (UTC if naive). A bare date as an upper bound means the whole day."""
    if len(value) == 10:
        day = datetime.combine(datetime.fromisoformat(value).date(), time(), tzinfo=UTC)
        return day + timedelta(days=1) if end else day
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def add_filters(parser: argparse.ArgumentParser, *, time_of: str) -> None:
    """The selection every listing and bulk action shares; `time_of` names the timestamp the range applies to."""
    parser.add_argument("--from", dest="since", type=time_bound, help=f"{time_of} at or after (date or datetime)")
    parser.add_argument("--to", dest="until", type=lambda v: time_bound(v, end=True), help=f"{time_of} before")
    parser.add_argument("--event-type", help="e.g. transaction.completed")
    parser.add_argument("--error", help="case-insensitive substring of the error")
    parser.add_argument("--player", help="playerId of the transaction")
    parser.add_argument("--client", help="RGS client id")


def add_bulk_options(parser: argparse.ArgumentParser, *, default_rate: float) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    parser.add_argument("--rate", type=float, default=default_rate, help=f"items per second (default {default_rate:g})")
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr even when not a terminal")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("webhooks", help="webhook deliveries in webhook_outbox: failures, details, redrive")
    nested = parser.add_subparsers(dest="webhooks_command", required=True, metavar="ACTION")

    failed = nested.add_parser("failed", help="FAILED and DEAD_LETTER webhooks, newest first (runbook query 1)")
    failed.add_argument("--status", dest="statuses", action="append", choices=FAILED_STATUSES, help="repeatable")
    add_filters(failed, time_of="created")
    failed.add_argument("--limit", type=int, default=20)
    json_flag(failed)
    failed.set_defaults(handler=run_failed)

    show = nested.add_parser("show", help="one webhook with its attempt history")
    show.add_argument("id", help="webhook id (= eventId)")
    json_flag(show)
    show.set_defaults(handler=run_show)

    redrive = nested.add_parser("redrive", help="send webhooks again from webhook_outbox (works without topics)")
    redrive.add_argument("--id", dest="ids", action="append", default=[], help="webhook id (repeatable)")
    redrive.add_argument(
        "--status",
        dest="statuses",
        action="append",
        choices=REDRIVABLE,
        help="repeatable; default FAILED and DEAD_LETTER",
    )
    add_filters(redrive, time_of="created")
    add_bulk_options(redrive, default_rate=50.0)
    redrive.add_argument("--reason", default="redrive requested via hubctl")
    json_flag(redrive)
    redrive.set_defaults(handler=run_redrive)


# --- shared plumbing (dlq.py uses it too) --------------------------------------------------------------------


def run_db(go: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run one command's work; a database or Kafka failure becomes a one-line message, not a traceback."""
    try:
        return asyncio.run(go())
    except asyncpg.UndefinedTableError as exc:
        raise SystemExit(f"hubctl: {exc} (run `hub-migrate` against DATABASE_URL first)") from exc
    except asyncpg.PostgresError as exc:
        raise SystemExit(f"hubctl: database error: {exc}") from exc
    except InfrastructureError as exc:
        raise SystemExit(f"hubctl: {exc}") from exc


async def audit(
    conn: asyncpg.Connection,
    event_id: str,
    *,
    actor: str,
    action: str,
    reason: str,
    before: dict[str, Any] | None,
    after: dict[str, Any],
) -> None:
    await conn.execute(
        """INSERT INTO audit_log (entity, entity_id, action, actor, before, after, reason)
           VALUES ('webhook_outbox', $1, $2, $3, $4::jsonb, $5::jsonb, $6)""",
        event_id,
        action,
        actor,
        orjson.dumps(before, default=str).decode() if before is not None else None,
        orjson.dumps(after, default=str).decode(),
        reason,
    )


class Pacer:
    """Spaces starts `1/rate` apart on a fixed schedule, so slow items do not lower the rate further."""

    def __init__(self, rate: float, *, clock_fn: Callable[[], float] = clock.monotonic) -> None:
        if rate <= 0:
            raise SystemExit("hubctl: --rate must be positive")
        self._interval = 1 / rate
        self._clock = clock_fn
        self._next: float | None = None

    async def wait(self) -> None:
        now = self._clock()
        if self._next is not None and self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next or now) + self._interval


def selection(args: argparse.Namespace) -> dict[str, Any]:
    """The filters as given, for the audit trail of a bulk action."""
    keys = ("ids", "statuses", "since", "until", "event_type", "error", "player", "client")
    return {k: getattr(args, k) for k in keys if getattr(args, k, None)}


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

    def __init__(self, conn: asyncpg.Connection, producer: KafkaProducer, *, actor: str, reason: str) -> None:
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
                await self._conn.execute(
                    "UPDATE webhook_outbox SET next_retry_at = now(), updated_at = now() WHERE id = $1::uuid",
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
        await audit(
            self._conn,
            event_id,
            actor=self._actor,
            action="webhook.redrive",
            reason=self._reason,
            before=before,
            after=after,
        )


async def reset_row(conn: asyncpg.Connection, event_id: str) -> None:
    """The runbook's "Reset webhook for retry", unchanged in effect."""
    await conn.execute(
        """UPDATE webhook_outbox
           SET status = 'PENDING', retry_count = 0, next_retry_at = NOW(), last_error = NULL, updated_at = now()
           WHERE id = $1::uuid""",
        event_id,
    )


# --- commands ---------------------------------------------------------------------------------------------------


def run_failed(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async def go() -> list[dict[str, Any]]:
        conn = await connect(settings)
        try:
            return await select_rows(conn, args, args.statuses or FAILED_STATUSES, order="DESC", limit=args.limit)
        finally:
            await conn.close()

    render(run_db(go), as_json=args.json, columns=FAILED_COLUMNS)
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
    pacer = Pacer(args.rate)
    # Named webhooks are looked at whatever their status, so the result says why one was skipped.
    statuses = args.statuses or list(STATUSES if args.ids else FAILED_STATUSES)
    request = selection(args)

    async def go() -> list[dict[str, Any]]:
        conn = await connect(settings)
        try:
            rows = await select_rows(conn, args, statuses, order="ASC", limit=None)
            if args.dry_run:
                return [{**_brief(r), "result": "would redrive"} for r in rows]
            producer = KafkaProducer(settings.kafka, client_id="hubctl")
            await producer.start()
            redriver = Redriver(conn, producer, actor=settings.hubctl_actor, reason=args.reason)
            bar = Progress("redrive", len(rows), enabled=wanted(args.progress))
            results = []
            try:
                for row in rows:
                    await pacer.wait()
                    outcome = await redriver.redrive(row["id"], request=request)
                    results.append({**_brief(row), "result": outcome})
                    bar.advance()
            finally:
                bar.close()
                await producer.stop()
            return results
        finally:
            await conn.close()

    render(run_db(go), as_json=args.json, columns=["id", "event_type", "status", "player_id", "result"])
    return 0


def _brief(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "event_type", "status", "player_id", "created_at", "last_error")
    return {k: row.get(k) for k in keys}
