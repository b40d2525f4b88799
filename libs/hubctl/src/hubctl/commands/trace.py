"""`hubctl trace <refId|transactionId|correlationId|webhookId>`: one transaction's timeline from every source.

The transactions row with its audit history, the idempotency key, the result events in event_outbox, the
webhook deliveries with every attempt, the Kafka records on the Hub's topics (commands, transactions, retry
tiers, dead letters; found by key, `correlation-id` header or payload ids, at most `--scan-limit` records per
partition read from just before the admission) and, with `--logs DIR` (e.g. `.hub/logs`), the log lines that
carry its ids. Read-only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hubctl import timeline
from hubctl.cli import Subparsers, command
from hubctl.context import HubctlSettings, connection
from hubctl.errors import HubctlError
from hubctl.output import render, section


def register(sub: Subparsers) -> None:
    parser = command(sub, "trace", help="one transaction's timeline: database, Kafka records, log lines", handler=run)
    parser.add_argument("id", help="refId, transactionId, correlation id or webhook id")
    parser.add_argument("--client", help="the RGS client of a refId (needed when several clients used it)")
    parser.add_argument("--logs", type=Path, metavar="DIR", help="log files to search (e.g. .hub/logs)")
    parser.add_argument("--no-kafka", dest="kafka", action="store_false", help="skip the topics")
    parser.add_argument("--scan-limit", type=int, default=100_000, help="records read per partition at most")
    parser.add_argument("--log-limit", type=int, default=2_000, help="log lines kept at most")


async def trace(args: argparse.Namespace, settings: HubctlSettings) -> dict[str, Any]:
    async with connection(settings) as conn:
        row = await timeline.find_transaction(conn, args.id, args.client)
        subject = timeline.subject_of(args.id, row)
        events = await timeline.database_events(conn, subject, row) if row is not None else []
    notes: list[str] = []
    if row is None:
        notes.append("no transactions row: searching the sources for the id as given")
    if args.kafka:
        records, scanned = await timeline.kafka_events(settings.kafka, subject, max_per_partition=args.scan_limit)
        events.extend(records)
        notes.extend(f"{t}: stopped after --scan-limit records per partition" for t in sorted(scanned.truncated))
    if args.logs is not None:
        if not args.logs.is_dir():
            raise HubctlError(f"--logs {args.logs}: not a directory")
        lines, cut = timeline.log_events(args.logs, subject, max_lines=args.log_limit)
        events.extend(lines)
        if cut:
            notes.append(f"log lines: stopped after --log-limit {args.log_limit}")
    events.sort(key=lambda e: e.at)
    return {
        "subject": subject.to_json(),
        "transaction": row,
        "timeline": [e.to_json() for e in events],
        "notes": notes,
    }


async def run(args: argparse.Namespace, settings: HubctlSettings) -> int:
    found = await trace(args, settings)
    if found["transaction"] is None and not found["timeline"]:
        raise HubctlError(f"nothing found for {args.id} (database, topics{', logs' if args.logs else ''})")
    if args.json:
        render(found, as_json=True)
        return 0
    tx = found["transaction"] or {}
    keys = ("ref_id", "id", "type", "player_id", "amount_cents", "currency", "status", "correlation_id")
    render({k: tx.get(k) for k in keys} if tx else found["subject"], as_json=False)
    section("timeline")
    rows = [{**e, "detail": _brief(e["detail"])} for e in found["timeline"]]
    render(rows, as_json=False, columns=["at", "source", "event", "detail"])
    for note in found["notes"]:
        print(f"note: {note}")
    return 0


def _brief(detail: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in detail.items() if not isinstance(v, dict | list))
