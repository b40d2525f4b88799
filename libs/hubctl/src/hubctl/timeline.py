"""One transaction's story from every source: database rows, Kafka records, log lines (`hubctl trace`).

Each source adds `Event`s; the caller sorts them into one timeline. What identifies the transaction in each
source (`Subject`) comes from its database row when there is one: the refId keys `hub.transactions`, the
playerId keys `hub.commands`, the webhook ids key the retry and dead-letter topics, and the correlation id
travels in every record's `correlation-id` header and every log line. Without a row (a database restored from an
older backup, a command that never reached the ledger) the given id is searched for as it is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from hub_common.kafka import TRANSACTIONS
from hub_common.kafka_scan import RawRecord, Scan, list_topics, scan
from hub_common.settings import KafkaSettings
from hubctl.errors import HubctlError

_TX_COLUMNS = """id::text AS id, client_id, ref_id, operator_id, type, player_id, amount_cents, currency, status,
                 reason, error_code, balance_cents, operator_transaction_id, correlation_id, attempts, created_at,
                 updated_at, completed_at, replayed_at"""
# Kafka records of a transaction are looked for from a little before its admission (producer clocks differ).
_CLOCK_SLACK = timedelta(minutes=1)


@dataclass(frozen=True)
class Event:
    at: datetime
    source: str
    event: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"at": self.at, "source": self.source, "event": self.event, "detail": self.detail}


@dataclass
class Subject:
    """The ids under which one transaction appears in the sources."""

    given: str
    transaction_id: str | None = None
    ref_id: str | None = None
    correlation_id: str | None = None
    player_id: str | None = None
    created_at: datetime | None = None
    webhook_ids: set[str] = field(default_factory=set)
    key_ids: set[str] = field(default_factory=set)

    def ids(self) -> set[str]:
        found = {self.given, *self.webhook_ids}
        found.update(i for i in (self.transaction_id, self.ref_id, self.correlation_id) if i)
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "given": self.given,
            "transactionId": self.transaction_id,
            "refId": self.ref_id,
            "correlationId": self.correlation_id,
            "playerId": self.player_id,
            "webhookIds": sorted(self.webhook_ids),
        }


# --- database --------------------------------------------------------------------------------------------------


async def find_transaction(conn: asyncpg.Connection, given: str, client: str | None = None) -> dict[str, Any] | None:
    """By refId (of `client`, needed when several clients used it), transactionId or webhook id (indexed), then by
    correlation id (a scan of `transactions`)."""
    rows = await conn.fetch(
        f"""SELECT {_TX_COLUMNS} FROM transactions WHERE ref_id = $1 AND ($2::text IS NULL OR client_id = $2)
            ORDER BY client_id""",  # noqa: S608 - _TX_COLUMNS is a constant column list
        given,
        client,
    )
    if len(rows) > 1:
        clients = ", ".join(r["client_id"] for r in rows)
        raise HubctlError(f"refId {given} exists for several clients ({clients}): give --client")
    row = rows[0] if rows else None
    if row is None and _is_uuid(given):
        row = await conn.fetchrow(
            f"""SELECT {_TX_COLUMNS} FROM transactions
                WHERE id = $1::uuid OR id = (SELECT transaction_id FROM webhook_outbox WHERE id = $1::uuid)""",  # noqa: S608 - _TX_COLUMNS is a constant column list
            given,
        )
    if row is None:
        row = await conn.fetchrow(
            f"SELECT {_TX_COLUMNS} FROM transactions WHERE correlation_id = $1 ORDER BY created_at LIMIT 1",  # noqa: S608 - _TX_COLUMNS is a constant column list
            given,
        )
    return dict(row) if row is not None else None


def subject_of(given: str, row: dict[str, Any] | None) -> Subject:
    if row is None:
        return Subject(given)
    return Subject(
        given,
        transaction_id=row["id"],
        ref_id=row["ref_id"],
        correlation_id=row["correlation_id"],
        player_id=row["player_id"],
        created_at=row["created_at"],
    )


async def database_events(conn: asyncpg.Connection, subject: Subject, row: dict[str, Any]) -> list[Event]:
    """The row, its key, its result events, its webhooks with every attempt, and the audit rows of all three."""
    events = [Event(row["created_at"], "transaction", "admitted", {"type": row["type"], "amount": row["amount_cents"]})]
    if row["completed_at"] is not None:
        final = {k: row[k] for k in ("reason", "error_code", "balance_cents", "operator_transaction_id") if row[k]}
        events.append(Event(row["completed_at"], "transaction", f"final: {row['status']}", final))
    for key in await conn.fetch(
        """SELECT id::text AS id, key, scope, status, created_at, updated_at, expires_at
           FROM idempotency_keys WHERE transaction_id = $1::uuid""",
        subject.transaction_id,
    ):
        subject.key_ids.add(key["id"])
        detail = {"key": key["key"], "scope": key["scope"], "status": key["status"], "expiresAt": key["expires_at"]}
        events.append(Event(key["created_at"], "idempotency_key", "key stored", detail))
    for event in await conn.fetch(
        """SELECT event_id::text AS event_id, value, created_at, published_at
           FROM event_outbox WHERE key = $1 AND topic = $2
             AND convert_from(value, 'UTF8')::jsonb #>> '{payload,transaction,transactionId}' = $3
           ORDER BY id""",
        subject.ref_id,
        TRANSACTIONS,
        subject.transaction_id,
    ):
        status = _status_in(event["value"])
        events.append(
            Event(event["created_at"], "event_outbox", f"event queued: {status}", {"eventId": event["event_id"]})
        )
        if event["published_at"] is not None:
            events.append(
                Event(event["published_at"], "event_outbox", "event published", {"eventId": event["event_id"]})
            )
    events.extend(await _webhook_events(conn, subject))
    events.extend(await _audit_events(conn, subject))
    return events


async def _webhook_events(conn: asyncpg.Connection, subject: Subject) -> list[Event]:
    events = []
    for hook in await conn.fetch(
        """SELECT id::text AS id, event_type, status, retry_count, last_error, attempts::text AS attempts,
                  created_at, delivered_at
           FROM webhook_outbox WHERE transaction_id = $1::uuid ORDER BY created_at""",
        subject.transaction_id,
    ):
        subject.webhook_ids.add(hook["id"])
        base = {"webhookId": hook["id"]}
        events.append(
            Event(hook["created_at"], "webhook", f"queued: {hook['event_type']}", {**base, "status": hook["status"]})
        )
        for attempt in orjson.loads(hook["attempts"]):
            what = f"attempt {attempt.get('attempt')}: {attempt.get('status') or attempt.get('error') or '-'}"
            keep = ("outcome", "latencyMs", "error", "replay", "skipped")
            detail = {**base, **{k: attempt[k] for k in keep if attempt.get(k) not in (None, False)}}
            events.append(Event(_time(attempt["at"]), "webhook", what, detail))
        if hook["delivered_at"] is not None:
            events.append(Event(hook["delivered_at"], "webhook", "delivered", base))
    return events


async def _audit_events(conn: asyncpg.Connection, subject: Subject) -> list[Event]:
    rows = await conn.fetch(
        """SELECT entity, entity_id, action, actor, os_user, reason, before::text AS before, after::text AS after, at
           FROM audit_log
           WHERE (entity = 'transaction' AND entity_id = $1)
              OR (entity = 'idempotency_key' AND entity_id = ANY($2::text[]))
              OR (entity = 'webhook_outbox' AND entity_id = ANY($3::text[]))
           ORDER BY id""",
        subject.transaction_id,
        sorted(subject.key_ids),
        sorted(subject.webhook_ids),
    )
    events = []
    for r in rows:
        detail = {"entity": r["entity"], "actor": r["actor"], "osUser": r["os_user"], "reason": r["reason"]}
        if r["after"] is not None:
            detail["after"] = orjson.loads(r["after"])
        events.append(Event(r["at"], "audit", r["action"], {k: v for k, v in detail.items() if v is not None}))
    return events


def _status_in(value: bytes) -> str:
    try:
        payload = orjson.loads(value).get("payload") or {}
    except orjson.JSONDecodeError:
        return "?"
    return str((payload.get("transaction") or {}).get("status", "?"))


# --- Kafka -----------------------------------------------------------------------------------------------------


def _payload(record: RawRecord) -> tuple[str | None, dict[str, Any]]:
    try:
        envelope = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return None, {}
    if not isinstance(envelope, dict):
        return None, {}
    payload = envelope.get("payload")
    return envelope.get("schema"), payload if isinstance(payload, dict) else {}


def _mentions(payload: dict[str, Any], ids: set[str]) -> bool:
    inner = payload.get("transaction")
    nested = inner if isinstance(inner, dict) else {}
    fields = ("transactionId", "refId", "eventId")
    return any(payload.get(f) in ids or nested.get(f) in ids for f in fields)


def _names_another(payload: dict[str, Any], transaction_id: str | None) -> bool:
    """The record carries a transactionId that is not the subject's (another client's transaction with the same
    refId, on a topic keyed by refId)."""
    inner = payload.get("transaction")
    named = (inner if isinstance(inner, dict) else payload).get("transactionId")
    return transaction_id is not None and named is not None and named != transaction_id


def kafka_matcher(subject: Subject) -> Callable[[RawRecord], bool]:
    ids = subject.ids()

    def keep(record: RawRecord) -> bool:
        if record.key is not None and record.key == subject.ref_id:
            return not _names_another(_payload(record)[1], subject.transaction_id)
        if record.correlation_id in ids or record.key in ids:
            return True
        # hub.commands is keyed by player, dead-letter topics by whatever the source used: look inside.
        if record.key == subject.player_id or record.topic.endswith(".dlq"):
            return _mentions(_payload(record)[1], ids)
        return False

    return keep


async def kafka_events(
    settings: KafkaSettings, subject: Subject, *, max_per_partition: int
) -> tuple[list[Event], Scan]:
    prefix = settings.topic("hub.")
    topics = [t for t in await list_topics(settings) if t.startswith(prefix)]
    since = subject.created_at - _CLOCK_SLACK if subject.created_at is not None else None
    found = await scan(
        settings,
        topics,
        keep=kafka_matcher(subject),
        since_ms=int(since.timestamp() * 1000) if since is not None else None,
        max_per_partition=max_per_partition,
    )
    return [_record_event(r, settings.topic_prefix) for r in found.records], found


def _record_event(record: RawRecord, prefix: str) -> Event:
    schema, payload = _payload(record)
    topic = record.topic.removeprefix(prefix)
    detail: dict[str, Any] = {"partition": record.partition, "offset": record.offset, "key": record.key}
    if schema:
        detail["schema"] = schema
    summary = _summary(payload)
    at = datetime.fromtimestamp(record.timestamp_ms / 1000, UTC)
    return Event(at, "kafka", f"{topic}" + (f": {summary}" if summary else ""), detail)


def _summary(payload: dict[str, Any]) -> str:
    inner = payload.get("transaction")
    if isinstance(inner, dict):
        return str(inner.get("status", ""))
    if "reason" in payload and "attempts" in payload:
        return f"dead letter ({payload['reason']})"
    if "attempt" in payload:
        return f"retry attempt {payload['attempt']}"
    if "type" in payload and "amountCents" in payload:
        return f"command {payload['type']} {payload['amountCents']}"
    return ""


# --- logs ------------------------------------------------------------------------------------------------------


def log_events(directory: Path, subject: Subject, *, max_lines: int) -> tuple[list[Event], bool]:
    """Lines of `*.log` files under `directory` that carry one of the subject's ids (JSON lines parsed)."""
    needles = sorted(subject.ids())
    events: list[Event] = []
    for path in sorted(directory.rglob("*.log")):
        for line in _lines(path):
            if not any(n in line for n in needles):
                continue
            if len(events) >= max_lines:
                return events, True
            events.append(_log_event(path.relative_to(directory), line))
    return events, False


def _lines(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        yield from handle


def _log_event(path: Path, line: str) -> Event:
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        entry = None
    if not isinstance(entry, dict):
        return Event(datetime.fromtimestamp(0, UTC), "log", line.strip()[:500], {"file": str(path)})
    ts = entry.get("ts")
    at = _time(ts) if isinstance(ts, str) else datetime.fromtimestamp(0, UTC)
    skip = {"ts", "msg", "correlationId", "traceId", "spanId"}
    detail = {"file": str(path), **{k: v for k, v in entry.items() if k not in skip}}
    return Event(at, "log", str(entry.get("msg", "")), detail)


def _time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
