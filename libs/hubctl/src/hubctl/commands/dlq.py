"""`hubctl dlq list|show|replay`: webhook dead letters on `hub.webhooks.dlq`.

`replay` hands a dead letter back to the dispatcher (runbook reset of its `webhook_outbox` row, recreated
from the dead letter if the row is gone), so it is sent again re-signed with a fresh timestamp, with
`X-Replay: true` and the same eventId; each replay is written to `audit_log` (who, when, which event, the
selection used). Webhooks delivered since are skipped. `--rate` caps replays per second so a bulk replay does
not flood the RGS; `--dry-run` lists what would be replayed. The time range applies to `deadLetteredAt`.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from hub_common.envelope import EnvelopeError, decode
from hub_common.kafka import WEBHOOKS_DLQ, admin_client, client_options
from hub_common.settings import KafkaSettings
from hub_dispatcher.messages import WebhookDeadLetter
from hubctl.commands.webhooks import (
    Pacer,
    add_bulk_options,
    add_filters,
    audit,
    reset_row,
    run_db,
    selection,
)
from hubctl.context import HubctlSettings, connect
from hubctl.output import json_flag, render
from hubctl.progress import Progress, wanted

COLUMNS = ["eventId", "eventType", "clientId", "playerId", "retryCount", "deadLetteredAt", "reason"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("dlq", help="webhook dead letters: list, show, replay")
    nested = parser.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    listing = nested.add_parser("list", help="dead letters matching the filters")
    add_filters(listing, time_of="dead-lettered")
    listing.add_argument("--limit", type=int, default=100)
    json_flag(listing)
    listing.set_defaults(handler=run_list)

    show = nested.add_parser("show", help="one dead letter with every attempt")
    show.add_argument("event_id")
    json_flag(show)
    show.set_defaults(handler=run_show)

    replay = nested.add_parser("replay", help="send dead letters again (re-signed, X-Replay: true)")
    add_filters(replay, time_of="dead-lettered")
    replay.add_argument("--id", dest="ids", action="append", default=[], help="eventId (repeatable)")
    add_bulk_options(replay, default_rate=10.0)
    replay.add_argument("--reason", default="dead letter replayed via hubctl")
    json_flag(replay)
    replay.set_defaults(handler=run_replay)


async def _partitions(settings: KafkaSettings, topic: str) -> list[TopicPartition]:
    admin = admin_client(settings, request_timeout_ms=10_000)
    try:
        await admin.start()
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for d in described if d["error_code"] == 0 for p in d["partitions"]]


async def read_dead_letters(settings: KafkaSettings) -> list[WebhookDeadLetter]:
    """Every dead letter on the topic, the latest record per eventId (a redelivery may re-emit one)."""
    tps = await _partitions(settings, settings.topic(WEBHOOKS_DLQ))
    if not tps:
        return []
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    latest: dict[str, WebhookDeadLetter] = {}
    try:
        await consumer.start()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            fetched = await consumer.getmany(*remaining, timeout_ms=1000)
            for messages in fetched.values():
                for msg in messages:
                    letter = _parse(msg.value)
                    if letter is not None:
                        latest[letter.event_id] = letter
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
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


def _load(settings: HubctlSettings) -> list[WebhookDeadLetter]:
    try:
        return asyncio.run(read_dead_letters(settings.kafka))
    except (KafkaError, OSError) as exc:
        raise SystemExit(f"hubctl: cannot read Kafka at {settings.kafka.bootstrap_servers}: {exc!r}") from exc


def run_list(args: argparse.Namespace, settings: HubctlSettings) -> int:
    found = [summary(d) for d in _load(settings) if matches(d, args)][: args.limit]
    render(found, as_json=args.json, columns=COLUMNS)
    return 0


def run_show(args: argparse.Namespace, settings: HubctlSettings) -> int:
    letter = next((d for d in _load(settings) if d.event_id == args.event_id), None)
    if letter is None:
        raise SystemExit(f"hubctl: no dead letter for event {args.event_id}")
    if args.json:
        render(letter.to_wire(), as_json=True)
    else:
        render(summary(letter), as_json=False)
        attempts = [a.to_wire() for a in letter.attempts]
        render(attempts, as_json=False, columns=["attempt", "at", "status", "latencyMs", "error", "response"])
    return 0


async def replay_one(
    conn: asyncpg.Connection, letter: WebhookDeadLetter, *, actor: str, reason: str, request: dict[str, Any]
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
            await audit(conn, letter.event_id, actor=actor, action="dlq.replay", reason=reason, before=None, after=what)
            return "replayed (row recreated)"
        row = await conn.fetchrow(
            "SELECT status, retry_count, last_error FROM webhook_outbox WHERE id = $1::uuid FOR UPDATE",
            letter.event_id,
        )
        if row is None or row["status"] != "DEAD_LETTER":
            # Delivered since (or already on its way again): a replay would only send a duplicate.
            return f"skipped: {row['status'] if row is not None else 'gone'}"
        await reset_row(conn, letter.event_id)
        await audit(
            conn, letter.event_id, actor=actor, action="dlq.replay", reason=reason, before=dict(row), after=what
        )
        return "replayed"


def run_replay(args: argparse.Namespace, settings: HubctlSettings) -> int:
    pacer = Pacer(args.rate)
    chosen = [d for d in _load(settings) if matches(d, args)]
    request = selection(args)

    async def go() -> list[dict[str, Any]]:
        if args.dry_run:
            return [{**summary(d), "result": "would replay"} for d in chosen]
        conn = await connect(settings)
        bar = Progress("replay", len(chosen), enabled=wanted(args.progress))
        results = []
        try:
            for letter in chosen:
                await pacer.wait()
                outcome = await replay_one(
                    conn, letter, actor=settings.hubctl_actor, reason=args.reason, request=request
                )
                results.append({**summary(letter), "result": outcome})
                bar.advance()
        finally:
            bar.close()
            await conn.close()
        return results

    render(run_db(go), as_json=args.json, columns=["eventId", "eventType", "playerId", "deadLetteredAt", "result"])
    return 0
