"""`hubctl dlq list|show|replay`: webhook dead letters on `hub.webhooks.dlq`.

`replay` hands a dead letter back to the dispatcher (runbook reset of its `webhook_outbox` row, recreated
from the dead letter if the row is gone), so it is sent again re-signed with a fresh timestamp, with
`X-Replay: true` and the same eventId; each replay is written to `audit_log` (who, when, which event, the
selection used). Webhooks delivered since are skipped. A replay needs a selection (`--id`, a filter, or `--all`)
and a confirmation (`--yes`); `--rate` caps replays per second so a bulk replay does not flood the RGS;
`--dry-run` lists what would be replayed. The time range applies to `deadLetteredAt`.
"""

from __future__ import annotations

import argparse
from typing import Any

import asyncpg
import orjson

from hub_common.envelope import EnvelopeError, decode
from hub_common.kafka import WEBHOOKS_DLQ
from hub_common.kafka_scan import scan
from hub_common.schemas import WebhookDeadLetter
from hub_common.settings import KafkaSettings
from hubctl import audit
from hubctl.bulk import Pacer, add_bulk_options, add_filters, confirm, selection
from hubctl.cli import Subparsers, command, group
from hubctl.commands.webhooks import reset_row
from hubctl.context import HubctlSettings, connection
from hubctl.errors import HubctlError
from hubctl.output import progress, progress_wanted, render

COLUMNS = ["eventId", "eventType", "clientId", "playerId", "retryCount", "deadLetteredAt", "reason"]


def register(sub: Subparsers) -> None:
    nested = group(sub, "dlq", help="webhook dead letters: list, show, replay", dest="dlq_command")

    listing = command(nested, "list", help="dead letters matching the filters", handler=run_list)
    add_filters(listing, time_of="dead-lettered")
    listing.add_argument("--limit", type=int, default=100)

    show = command(nested, "show", help="one dead letter with every attempt", handler=run_show)
    show.add_argument("event_id")

    replay = command(nested, "replay", help="send dead letters again (re-signed, X-Replay: true)", handler=run_replay)
    add_filters(replay, time_of="dead-lettered")
    replay.add_argument("--id", dest="ids", action="append", default=[], help="eventId (repeatable)")
    replay.add_argument("--all", action="store_true", help="every dead letter (a replay needs a selection)")
    add_bulk_options(replay, default_rate=10.0, reason="dead letter replayed via hubctl")


async def read_dead_letters(settings: KafkaSettings) -> list[WebhookDeadLetter]:
    """Every dead letter on the topic, the latest record per eventId (a redelivery may re-emit one)."""
    latest: dict[str, WebhookDeadLetter] = {}
    for record in (await scan(settings, [settings.topic(WEBHOOKS_DLQ)])).records:
        letter = _parse(record.value)
        if letter is not None:
            latest[letter.event_id] = letter
    return sorted(latest.values(), key=lambda d: d.dead_lettered_at)


def _parse(raw: bytes | None) -> WebhookDeadLetter | None:
    try:
        return decode(raw).payload_as(WebhookDeadLetter)
    except EnvelopeError:
        return None


def matches(letter: WebhookDeadLetter, args: argparse.Namespace) -> bool:
    data = letter.body.get("data") or {}
    errors = [letter.reason, *(a.error or "" for a in letter.attempts)]
    checks = [
        args.since is None or letter.dead_lettered_at >= args.since,
        args.until is None or letter.dead_lettered_at < args.until,
        args.event_type is None or letter.event_type == args.event_type,
        args.error is None or any(args.error.lower() in e.lower() for e in errors),
        args.player is None or data.get("playerId") == args.player,
        args.client is None or letter.client_id == args.client,
        not getattr(args, "ids", None) or letter.event_id in args.ids,
    ]
    return all(checks)


def summary(letter: WebhookDeadLetter) -> dict[str, Any]:
    return {
        "eventId": letter.event_id,
        "eventType": letter.event_type,
        "clientId": letter.client_id,
        "playerId": (letter.body.get("data") or {}).get("playerId"),
        "retryCount": letter.retry_count,
        "deadLetteredAt": letter.dead_lettered_at,
        "reason": letter.reason,
    }


async def run_list(args: argparse.Namespace, settings: HubctlSettings) -> int:
    found = [summary(d) for d in await read_dead_letters(settings.kafka) if matches(d, args)][: args.limit]
    render(found, as_json=args.json, columns=COLUMNS)
    return 0


async def run_show(args: argparse.Namespace, settings: HubctlSettings) -> int:
    letter = next((d for d in await read_dead_letters(settings.kafka) if d.event_id == args.event_id), None)
    if letter is None:
        raise HubctlError(f"no dead letter for event {args.event_id}")
    if args.json:
        render(letter.to_wire(), as_json=True)
    else:
        render(summary(letter), as_json=False)
        attempts = [a.to_wire() for a in letter.attempts]
        render(attempts, as_json=False, columns=["attempt", "at", "status", "latencyMs", "error", "response"])
    return 0


async def replay_one(
    conn: asyncpg.Connection, letter: WebhookDeadLetter, *, actor: audit.Actor, reason: str, request: dict[str, Any]
) -> str:
    """Reset the outbox row (or recreate it from the dead letter) so the dispatcher sends it again."""
    what = {"status": "PENDING", "retryCount": 0, "deadLetteredAt": letter.dead_lettered_at, "request": request}
    async with conn.transaction():
        created = await conn.fetchval(
            """INSERT INTO webhook_outbox (id, transaction_id, client_id, event_type, payload, status, next_retry_at)
               VALUES ($1::uuid, (SELECT id FROM transactions WHERE id = $2::uuid), $3, $4, $5::jsonb,
                       'PENDING', now())
               ON CONFLICT (id) DO NOTHING
               RETURNING true""",
            letter.event_id,
            letter.transaction_id,
            letter.client_id,
            letter.event_type,
            orjson.dumps(letter.body).decode(),
        )
        if created:
            entry = audit.Entry(audit.WEBHOOK, letter.event_id, audit.DLQ_REPLAY, reason, None, what)
            await audit.write(conn, actor, entry)
            return "replayed (row recreated)"
        row = await conn.fetchrow(
            "SELECT status, retry_count, last_error FROM webhook_outbox WHERE id = $1::uuid FOR UPDATE",
            letter.event_id,
        )
        if row is None or row["status"] != "DEAD_LETTER":
            # Delivered since (or already on its way again): a replay would only send a duplicate.
            return f"skipped: {row['status'] if row is not None else 'gone'}"
        await reset_row(conn, letter.event_id)
        await audit.write(
            conn, actor, audit.Entry(audit.WEBHOOK, letter.event_id, audit.DLQ_REPLAY, reason, dict(row), what)
        )
        return "replayed"


async def run_replay(args: argparse.Namespace, settings: HubctlSettings) -> int:
    request = selection(args)
    if not request and not args.all:
        raise HubctlError("give a selection (--id, --from/--to, --event-type, --error, --player, --client) or --all")
    pacer = Pacer(args.rate)
    chosen = [d for d in await read_dead_letters(settings.kafka) if matches(d, args)]
    columns = ["eventId", "eventType", "playerId", "deadLetteredAt", "result"]
    if args.dry_run or not chosen:
        render([{**summary(d), "result": "would replay"} for d in chosen], as_json=args.json, columns=columns)
        return 0
    actor = audit.actor(settings)
    confirm(f"Replay {len(chosen)} dead letter(s)?", assume_yes=args.yes)
    results = []
    async with connection(settings) as conn:
        with progress("replay", len(chosen), enabled=progress_wanted(args.progress)) as advance:
            for letter in chosen:
                await pacer.wait()
                outcome = await replay_one(
                    conn, letter, actor=actor, reason=args.reason, request=request or {"all": True}
                )
                results.append({**summary(letter), "result": outcome})
                advance()
    render(results, as_json=args.json, columns=columns)
    return 0
