"""`webhook_outbox`: one row per result event (id = eventId), the source of truth for delivery state.

Every attempt first *claims* the row for its attempt number (`retry_count = attempt - 1`), so a redelivered
Kafka record, a stale retry record, or a row an operator reset (runbook) never causes a second POST for the
same attempt. Statuses are the runbook's: PENDING, PROCESSING, DELIVERED, FAILED (will retry), DEAD_LETTER.
The delivery path's statements take many rows at once (`unnest` arrays; see `writes.py`): one round trip per
batch instead of one per event.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import orjson

from hub_common.errors import DatabaseUnavailableError
from hub_common.schemas import Attempt

T = TypeVar("T")

_COLUMNS = (
    "id::text AS id, transaction_id::text AS transaction_id, client_id, event_type, payload::text AS payload, "
    "status, retry_count, next_retry_at, attempts::text AS attempts, correlation_id, last_error"
)
_CLAIMED_COLUMNS = (
    "w.id::text AS id, w.transaction_id::text AS transaction_id, w.client_id, w.event_type, "
    "w.payload::text AS payload, w.status, w.retry_count, w.next_retry_at, w.attempts::text AS attempts, "
    "w.correlation_id, w.last_error, due.status AS claimed_from"
)


_W_COLUMNS = (
    "w.id::text AS id, w.transaction_id::text AS transaction_id, w.client_id, w.event_type, "
    "w.payload::text AS payload, w.status, w.retry_count, w.next_retry_at, w.attempts::text AS attempts, "
    "w.correlation_id, w.last_error"
)


@dataclass(frozen=True)
class NewRow:
    """A result event's row: created claimed for attempt 1, or re-claimed when the event comes again."""

    event_id: str
    transaction_id: str
    client_id: str
    event_type: str
    payload: str  # the body's JSON, exactly as it is sent
    correlation_id: str


@dataclass(frozen=True)
class Claim:
    event_id: str
    attempt: int


@dataclass(frozen=True)
class Finished:
    """An attempt's result for the row; `next_retry_at` only for a failed attempt that will be retried."""

    event_id: str
    attempt: Attempt
    next_retry_at: datetime | None = None


@dataclass(frozen=True)
class OutboxRow:
    id: str
    transaction_id: str | None
    client_id: str
    event_type: str
    payload: dict[str, Any]
    status: str
    retry_count: int
    next_retry_at: datetime | None
    attempts: list[dict[str, Any]]
    correlation_id: str | None
    last_error: str | None
    # Set on rows taken by the sweep: the status before the claim (PENDING = an operator asked for a replay).
    claimed_from: str | None = None

    @classmethod
    def of(cls, record: asyncpg.Record) -> OutboxRow:
        return cls(
            id=record["id"],
            transaction_id=record["transaction_id"],
            client_id=record["client_id"],
            event_type=record["event_type"],
            payload=orjson.loads(record["payload"]),
            status=record["status"],
            retry_count=record["retry_count"],
            next_retry_at=record["next_retry_at"],
            attempts=orjson.loads(record["attempts"]),
            correlation_id=record["correlation_id"],
            last_error=record["last_error"],
            claimed_from=record.get("claimed_from"),
        )


def _first_of_each(ids: Iterable[str]) -> set[int]:
    """Indexes of the first occurrence of each id: a statement may touch a row only once."""
    seen: dict[str, int] = {}
    for index, event_id in enumerate(ids):
        seen.setdefault(event_id, index)
    return set(seen.values())


def _attempt_json(attempt: Attempt) -> str:
    return orjson.dumps([attempt.to_wire()]).decode()


class OutboxStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def _run(self, op: Callable[[], Awaitable[T]]) -> T:
        try:
            return await op()
        except (
            OSError,
            TimeoutError,
            asyncpg.InterfaceError,
            asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError,
            asyncpg.TooManyConnectionsError,
            # Multi-row writes of concurrent batches (or replicas) may lock shared rows in different orders.
            asyncpg.DeadlockDetectedError,
        ) as exc:
            raise DatabaseUnavailableError(f"webhook_outbox query failed: {type(exc).__name__}") from exc

    async def purge_delivered(self, *, older_than_days: int) -> int:
        """Delete DELIVERED rows older than the retention (dead letters stay for the SRE); returns how many."""
        result = await self._run(
            lambda: self._pool.execute(
                """DELETE FROM webhook_outbox WHERE status = 'DELIVERED'
                   AND delivered_at < now() - make_interval(days => $1)""",
                older_than_days,
            )
        )
        return int(result.split()[-1])

    async def claim_new(self, rows: Sequence[NewRow]) -> list[bool]:
        """Per row: True if it is now claimed for attempt 1 (created, or an existing row whose attempt 1 is
        not done yet); False if attempt 1 was already made or the row is final (a redelivered event)."""
        unique = _first_of_each(r.event_id for r in rows)
        # The transactions row is written by the gateway/ledger; if it is not there (yet), keep the event anyway.
        sql = """
            INSERT INTO webhook_outbox AS w
                (id, transaction_id, client_id, event_type, payload, correlation_id, status)
            SELECT n.id, t.id, n.client_id, n.event_type, n.payload, n.correlation_id, 'PROCESSING'
            FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::text[])
                AS n(id, transaction_id, client_id, event_type, payload, correlation_id)
            LEFT JOIN transactions t ON t.id = n.transaction_id
            ON CONFLICT (id) DO UPDATE SET status = 'PROCESSING', updated_at = now()
                WHERE w.status IN ('PENDING', 'PROCESSING', 'FAILED') AND w.retry_count = 0
            RETURNING w.id::text AS id"""
        batch = [rows[i] for i in unique]
        args = (
            [r.event_id for r in batch],
            [r.transaction_id for r in batch],
            [r.client_id for r in batch],
            [r.event_type for r in batch],
            [r.payload for r in batch],
            [r.correlation_id for r in batch],
        )
        records = await self._run(lambda: self._pool.fetch(sql, *args))
        claimed = {r["id"] for r in records}
        return [i in unique and rows[i].event_id in claimed for i in range(len(rows))]

    async def claim(self, claims: Sequence[Claim]) -> list[OutboxRow | None]:
        """Per claim: the row taken for that attempt; None if the attempt was already made or the row is final."""
        unique = _first_of_each(c.event_id for c in claims)
        sql = f"""
            UPDATE webhook_outbox w SET status = 'PROCESSING', updated_at = now()
            FROM unnest($1::uuid[], $2::int[]) AS c(id, retry_count)
            WHERE w.id = c.id AND w.status IN ('PENDING', 'PROCESSING', 'FAILED') AND w.retry_count = c.retry_count
            RETURNING {_W_COLUMNS}"""  # noqa: S608 - _W_COLUMNS is a constant column list
        batch = [claims[i] for i in unique]
        ids, counts = [c.event_id for c in batch], [c.attempt - 1 for c in batch]
        records = await self._run(lambda: self._pool.fetch(sql, ids, counts))
        by_id = {r["id"]: OutboxRow.of(r) for r in records}
        return [by_id.get(c.event_id) if i in unique else None for i, c in enumerate(claims)]

    async def get(self, event_id: str) -> OutboxRow | None:
        sql = f"SELECT {_COLUMNS} FROM webhook_outbox WHERE id = $1::uuid"  # noqa: S608 - _COLUMNS is a constant column list
        record = await self._run(lambda: self._pool.fetchrow(sql, event_id))
        return OutboxRow.of(record) if record is not None else None

    async def claim_due(self, *, limit: int, stale_after_s: float) -> list[OutboxRow]:
        """Rows reset to PENDING by an operator (runbook replay) and rows a crashed attempt left PROCESSING."""
        sql = f"""
            WITH due AS (
                SELECT id, status FROM webhook_outbox
                WHERE (status = 'PENDING' AND next_retry_at IS NOT NULL AND next_retry_at <= now())
                   OR (status = 'PROCESSING' AND updated_at < now() - make_interval(secs => $2))
                ORDER BY next_retry_at NULLS FIRST
                LIMIT $1
                FOR UPDATE SKIP LOCKED)
            UPDATE webhook_outbox w SET status = 'PROCESSING', updated_at = now()
            FROM due WHERE w.id = due.id
            RETURNING {_CLAIMED_COLUMNS}"""  # noqa: S608 - _CLAIMED_COLUMNS is a constant column list
        records = await self._run(lambda: self._pool.fetch(sql, limit, stale_after_s))
        return [OutboxRow.of(r) for r in records]

    async def mark_delivered(self, finished: Sequence[Finished]) -> list[None]:
        sql = """
            UPDATE webhook_outbox w
            SET status = 'DELIVERED', delivered_at = now(), updated_at = now(), next_retry_at = NULL,
                last_error = NULL, attempts = w.attempts || d.attempt
            FROM unnest($1::uuid[], $2::jsonb[]) AS d(id, attempt)
            WHERE w.id = d.id"""
        ids, attempts = [f.event_id for f in finished], [_attempt_json(f.attempt) for f in finished]
        await self._run(lambda: self._pool.execute(sql, ids, attempts))
        return [None] * len(finished)

    async def mark_failed(self, finished: Sequence[Finished]) -> list[None]:
        """Attempts that failed and will be retried at their `next_retry_at`."""
        sql = """
            UPDATE webhook_outbox w
            SET status = 'FAILED', retry_count = f.retry_count, next_retry_at = f.next_retry_at,
                last_error = f.last_error, updated_at = now(), attempts = w.attempts || f.attempt
            FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::text[], $5::jsonb[])
                AS f(id, retry_count, next_retry_at, last_error, attempt)
            WHERE w.id = f.id"""
        args = (
            [f.event_id for f in finished],
            [f.attempt.attempt for f in finished],
            [f.next_retry_at for f in finished],
            [f.attempt.error for f in finished],
            [_attempt_json(f.attempt) for f in finished],
        )
        await self._run(lambda: self._pool.execute(sql, *args))
        return [None] * len(finished)

    async def mark_dead(self, event_id: str, attempt: Attempt, *, reason: str) -> OutboxRow | None:
        sql = f"""
            UPDATE webhook_outbox
            SET status = 'DEAD_LETTER', retry_count = $2, next_retry_at = NULL, last_error = $3,
                updated_at = now(), attempts = attempts || $4::jsonb
            WHERE id = $1::uuid
            RETURNING {_COLUMNS}"""  # noqa: S608 - _COLUMNS is a constant column list
        record = await self._run(
            lambda: self._pool.fetchrow(sql, event_id, attempt.attempt, reason, _attempt_json(attempt))
        )
        return OutboxRow.of(record) if record is not None else None
