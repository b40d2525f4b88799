"""PostgreSQL adapter of the gateway: admission (one database transaction) and lookups.

asyncpg exceptions do not leave this module: they become `DatabaseUnavailableError`, `AdmissionRaceError` or
`RequestInProgressError`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from hub_common.errors import DatabaseUnavailableError
from hub_common.schemas import ErrorCode, Transaction, TransactionRequest
from hub_gateway.errors import AdmissionRaceError, RequestInProgressError

# Every other database failure means "nothing was admitted, try again later" (503), whatever its class:
# a read-only standby after failover, a database refusing connections, a full disk, a dropped table. The two
# errors that carry meaning for admission (unique violation, lock timeout) are caught before these.
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresError,
)

_MEANINGFUL = (asyncpg.UniqueViolationError, asyncpg.LockNotAvailableError)

_COLUMNS = """t.id, t.client_id, t.ref_id, t.type, t.player_id, t.amount_cents, t.currency, t.round_id,
    t.game_id, t.original_ref_id, t.status, t.reason, t.error_code, t.balance_cents, t.operator_transaction_id,
    t.request_hash, t.created_at, t.updated_at, t.completed_at"""


@dataclass(frozen=True)
class StoredTransaction:
    transaction: Transaction
    client_id: str
    request_hash: str
    error_code: ErrorCode | None


@dataclass(frozen=True)
class Existing:
    """What a new request collides with: its key's transaction and/or the transaction holding its refId."""

    by_key: StoredTransaction | None
    key_hash: str | None
    by_ref: StoredTransaction | None


@dataclass(frozen=True)
class Admission:
    transaction_id: uuid.UUID
    client_id: str
    idempotency_key: str
    request: TransactionRequest
    request_hash: str
    correlation_id: str
    admitted_at: datetime


def _error_code(value: str | None) -> ErrorCode | None:
    if value is None:
        return None
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL_ERROR


def stored_from_row(row: asyncpg.Record) -> StoredTransaction:
    transaction = Transaction(
        transaction_id=str(row["id"]),
        ref_id=row["ref_id"],
        type=row["type"],
        player_id=row["player_id"],
        amount_cents=row["amount_cents"],
        currency=row["currency"],
        round_id=row["round_id"],
        game_id=row["game_id"],
        original_ref_id=row["original_ref_id"],
        status=row["status"],
        reason=row["reason"],
        balance_cents=row["balance_cents"],
        operator_transaction_id=row["operator_transaction_id"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )
    return StoredTransaction(transaction, row["client_id"], row["request_hash"], _error_code(row["error_code"]))


class TransactionStore:
    def __init__(self, pool: asyncpg.Pool, *, lock_timeout_ms: int, retry_after_s: int, key_ttl_s: int) -> None:
        self._pool = pool
        self._lock_timeout_ms = lock_timeout_ms
        self._retry_after_s = retry_after_s
        self._key_ttl = timedelta(seconds=key_ttl_s)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _MEANINGFUL:
            raise  # `admit` turns these into conflicts, not outages
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}") from exc

    async def find_existing(self, client_id: str, key: str, ref_id: str) -> Existing | None:
        async with self._connection() as conn:
            key_row = await conn.fetchrow(
                f"""SELECT {_COLUMNS}, k.request_hash AS key_hash
                    FROM idempotency_keys k JOIN transactions t ON t.id = k.transaction_id
                    WHERE k.scope = $1 AND k.key = $2 AND k.expires_at > now()""",
                client_id,
                key,
            )
            ref_row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM transactions t WHERE t.ref_id = $1", ref_id)
        if key_row is None and ref_row is None:
            return None
        return Existing(
            by_key=stored_from_row(key_row) if key_row is not None else None,
            key_hash=key_row["key_hash"] if key_row is not None else None,
            by_ref=stored_from_row(ref_row) if ref_row is not None else None,
        )

    async def get_by_ref(self, client_id: str, ref_id: str) -> StoredTransaction | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM transactions t WHERE t.ref_id = $1 AND t.client_id = $2", ref_id, client_id
            )
        return stored_from_row(row) if row is not None else None

    async def get_by_id(self, transaction_id: str) -> StoredTransaction | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM transactions t WHERE t.id = $1", uuid.UUID(transaction_id)
            )
        return stored_from_row(row) if row is not None else None

    async def backlog(self) -> int:
        async with self._connection() as conn:
            value = await conn.fetchval("SELECT count(*) FROM transactions WHERE status IN ('PENDING', 'PROCESSING')")
        return int(value)

    async def admit(self, admission: Admission, publish: Callable[[], Awaitable[None]]) -> StoredTransaction:
        """Insert the rows, run `publish` (the Kafka produce), commit; any failure rolls everything back."""
        try:
            async with self._connection() as conn, conn.transaction():
                # A concurrent admission of the same key/refId holds the unique-index entry until it commits;
                # waiting briefly for it and then answering "in progress" keeps connections from piling up.
                await conn.execute(f"SET LOCAL lock_timeout = '{int(self._lock_timeout_ms)}ms'")
                row = await self._insert(conn, admission)
                await publish()
        except asyncpg.UniqueViolationError as exc:
            raise AdmissionRaceError("a concurrent request admitted this key or refId first") from exc
        except asyncpg.LockNotAvailableError as exc:
            raise RequestInProgressError(self._retry_after_s) from exc
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}") from exc
        return stored_from_row(row)

    async def _insert(self, conn: asyncpg.Connection, a: Admission) -> asyncpg.Record:
        req = a.request
        # An expired key no longer replays: it makes room for its reuse.
        await conn.execute(
            "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at <= now()",
            a.client_id,
            a.idempotency_key,
        )
        row = await conn.fetchrow(
            f"""INSERT INTO transactions AS t (id, client_id, ref_id, type, player_id, amount_cents, currency,
                    round_id, game_id, original_ref_id, round_closed, metadata, request_hash, status,
                    correlation_id, created_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, 'PENDING', $14, $15, $15)
                RETURNING {_COLUMNS}""",
            a.transaction_id,
            a.client_id,
            req.ref_id,
            req.type.value,
            req.player_id,
            req.amount_cents,
            req.currency,
            req.round_id,
            req.game_id,
            req.original_ref_id,
            req.round_closed,
            orjson.dumps(req.metadata).decode(),
            a.request_hash,
            a.correlation_id,
            a.admitted_at,
        )
        await conn.execute(
            """INSERT INTO idempotency_keys (id, key, scope, request_hash, status, transaction_id, created_at,
                    updated_at, expires_at)
               VALUES ($1, $2, $3, $4, 'PROCESSING', $5, $6, $6, $7)""",
            uuid.uuid4(),
            a.idempotency_key,
            a.client_id,
            a.request_hash,
            a.transaction_id,
            a.admitted_at,
            a.admitted_at + self._key_ttl,
        )
        after: dict[str, Any] = {
            **req.to_wire(),
            "status": "PENDING",
            "idempotencyKey": a.idempotency_key,
            "correlationId": a.correlation_id,
        }
        await conn.execute(
            """INSERT INTO audit_log (entity, entity_id, action, actor, before, after, reason)
               VALUES ('transaction', $1, 'ADMITTED', $2, NULL, $3::jsonb, 'admitted by the gateway')""",
            str(a.transaction_id),
            f"gateway:{a.client_id}",
            orjson.dumps(after).decode(),
        )
        assert row is not None
        return row
