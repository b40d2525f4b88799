"""`webhook_outbox`: one row per result event (id = eventId), the source of truth for delivery state.

Every attempt first *claims* the row for its attempt number (`retry_count = attempt - 1`), so a redelivered
Kafka record, a stale retry record, or a row an operator reset (runbook) never causes a second POST for the
same attempt. Statuses are the runbook's: PENDING, PROCESSING, DELIVERED, FAILED (will retry), DEAD_LETTER.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import orjson

from hub_common.errors import DatabaseUnavailableError
from hub_dispatcher.messages import Attempt

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
        ) as exc:
            raise DatabaseUnavailableError(f"webhook_outbox query failed: {type(exc).__name__}") from exc

    async def insert_claimed(
        self,
        *,
        event_id: str,
        transaction_id: str,
        client_id: str,
        event_type: str,
        payload: dict[str, Any],
        correlation_id: str,
    ) -> OutboxRow | None:
        """Create the row claimed for attempt 1; None if it exists already (a redelivered event)."""
        # The transactions row is written by the gateway/ledger; if it is not there (yet), keep the event anyway.
        sql = f"""
            INSERT INTO webhook_outbox (id, transaction_id, client_id, event_type, payload, correlation_id, status)
            VALUES ($1::uuid, (SELECT id FROM transactions WHERE id = $2::uuid), $3, $4, $5::jsonb, $6, 'PROCESSING')
            ON CONFLICT (id) DO NOTHING
            RETURNING {_COLUMNS}"""
        body = orjson.dumps(payload).decode()
        record = await self._run(
            lambda: self._pool.fetchrow(sql, event_id, transaction_id, client_id, event_type, body, correlation_id)
        )
        return OutboxRow.of(record) if record is not None else None

    async def claim(self, event_id: str, attempt: int) -> OutboxRow | None:
        """Take the row for `attempt`; None if that attempt was already made or the row is final."""
        sql = f"""
            UPDATE webhook_outbox SET status = 'PROCESSING', updated_at = now()
            WHERE id = $1::uuid AND status IN ('PENDING', 'PROCESSING', 'FAILED') AND retry_count = $2
            RETURNING {_COLUMNS}"""
        record = await self._run(lambda: self._pool.fetchrow(sql, event_id, attempt - 1))
        return OutboxRow.of(record) if record is not None else None

    async def get(self, event_id: str) -> OutboxRow | None:
        sql = f"SELECT {_COLUMNS} FROM webhook_outbox WHERE id = $1::uuid"
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
            RETURNING {_CLAIMED_COLUMNS}"""
        records = await self._run(lambda: self._pool.fetch(sql, limit, stale_after_s))
        return [OutboxRow.of(r) for r in records]

    async def mark_delivered(self, event_id: str, attempt: Attempt) -> None:
        sql = """
            UPDATE webhook_outbox
            SET status = 'DELIVERED', delivered_at = now(), updated_at = now(), next_retry_at = NULL,
                last_error = NULL, attempts = attempts || $2::jsonb
            WHERE id = $1::uuid"""
        await self._run(lambda: self._pool.execute(sql, event_id, _attempt_json(attempt)))

    async def mark_failed(self, event_id: str, attempt: Attempt, *, next_retry_at: datetime) -> None:
        sql = """
            UPDATE webhook_outbox
            SET status = 'FAILED', retry_count = $2, next_retry_at = $3, last_error = $4, updated_at = now(),
                attempts = attempts || $5::jsonb
            WHERE id = $1::uuid"""
        await self._run(
            lambda: self._pool.execute(
                sql, event_id, attempt.attempt, next_retry_at, attempt.error, _attempt_json(attempt)
            )
        )

    async def mark_dead(self, event_id: str, attempt: Attempt, *, reason: str) -> OutboxRow | None:
        sql = f"""
            UPDATE webhook_outbox
            SET status = 'DEAD_LETTER', retry_count = $2, next_retry_at = NULL, last_error = $3,
                updated_at = now(), attempts = attempts || $4::jsonb
            WHERE id = $1::uuid
            RETURNING {_COLUMNS}"""
        record = await self._run(
            lambda: self._pool.fetchrow(sql, event_id, attempt.attempt, reason, _attempt_json(attempt))
        )
        return OutboxRow.of(record) if record is not None else None
