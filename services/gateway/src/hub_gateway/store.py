"""PostgreSQL adapter of the gateway: admission (one database transaction) and lookups.

asyncpg exceptions do not leave this module: they become `DatabaseUnavailableError` or `RequestInProgressError`.

Group commit (`hub_common.batching`): admissions that arrive while others are being written share one database
transaction: one INSERT for all of them (`unnest`), their commands produced together (one Kafka request per
broker) and acknowledged before the one COMMIT. A lone admission is written at once, as before. Each request still
gets its own answer, and every guarantee of a single admission holds for each:
- a collision (refId, operator id or key taken) leaves that request out; a batch where an item would half-land
  (its row inserted but its key taken) is rolled back and its items admitted one by one;
- PostgreSQL failing fails the whole batch before or at COMMIT: 503 for all, nothing admitted;
- Kafka failing for every command: rolled back, 503 for all. Failing for some only: rolled back, and the
  commands Kafka did acknowledge are admitted again at once without a produce (their records exist: they must be
  admitted, as the ledger would insert them anyway); the others answer 503.

Admission has its own pool (`create_admission_pool`): a fixed set of connections that stay open, so the admission
statement is prepared once per connection, and that skip asyncpg's reset query on release (one round trip per
request). That is safe because nothing on these connections keeps session state: no SET (only the connection's
own lock_timeout), no LISTEN, no advisory lock, no cursor; an open transaction is rolled back by asyncpg anyway.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import asyncpg
import orjson
from prometheus_client import Histogram

from hub_common import audit, db
from hub_common.batching import GroupCommit, OnFailure
from hub_common.errors import DatabaseUnavailableError, HubError, KafkaUnavailableError
from hub_common.operator import BudgetOutlook, OperatorSettings, operator_id, read_outlook
from hub_common.schemas import ErrorCode, Transaction, TransactionRequest
from hub_common.settings import DatabaseSettings
from hub_common.transactions import error_code, resource_from_record
from hub_gateway.admission_control import OpenWork
from hub_gateway.errors import RequestInProgressError

ADMISSION_BATCH_SIZE = Histogram(
    "gateway_admission_batch_size",
    "Admissions written by one database transaction and one Kafka request (group commit)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200),
)

# Every database failure means "nothing was admitted, try again later" (503), whatever its class: a read-only
# standby after failover, a database refusing connections, a full disk, a dropped table. The one error that
# carries meaning for admission (lock timeout: a concurrent admission of the same key/refId) is caught first.
_UNAVAILABLE = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresError,
)

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
    """What a new request collides with: its key's transaction and/or the transaction holding its refId (the
    client's transaction with that refId; else, rarely, another transaction already holding the operator id the
    request would get: a row admitted before refIds were per client, sent under a refId of that form)."""

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
    # A BET's useful life: the ledger does not send it after this moment (REJECTED BET_EXPIRED).
    send_by: datetime | None = None

    @property
    def operator_id(self) -> str:
        """Derived once, here: the row and the command carry it; everything after admission reads those."""
        return operator_id(self.client_id, self.request.ref_id)


def stored_from_row(row: asyncpg.Record) -> StoredTransaction:
    code = error_code(row["error_code"])
    return StoredTransaction(resource_from_record(row), row["client_id"], row["request_hash"], code)


# One statement, one round trip: the three rows of an admission, or none of them when the client's refId, the
# operator id or the key is taken (ON CONFLICT DO NOTHING without a target covers every unique index). The key
# and the audit row are inserted only for a transaction row that was, the audit row only with a key; no row
# comes back unless all three were written, and the caller then rolls back and looks at what it collided with.
# A conflicting row that is not committed yet is waited for (up to the pool's lock_timeout), like a plain
# unique check.
_ADMIT = f"""
    WITH tx AS (
        INSERT INTO transactions AS t (id, client_id, ref_id, type, player_id, amount_cents, currency, round_id,
            game_id, original_ref_id, round_closed, metadata, request_hash, status, correlation_id, created_at,
            updated_at, operator_id, send_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, 'PENDING', $14, $15, $15, $21, $22)
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}
    ), k AS (
        INSERT INTO idempotency_keys (id, key, scope, request_hash, status, transaction_id, created_at,
            updated_at, expires_at)
        SELECT $16, $17, $2, $13, 'PROCESSING', tx.id, $15, $15, $18 FROM tx
        ON CONFLICT DO NOTHING
        RETURNING transaction_id
    ), audit AS (
        {audit.INSERT}
        SELECT 'transaction', k.transaction_id::text, 'ADMITTED', $19, NULL, $20::jsonb, 'admitted by the gateway'
        FROM k
    )
    SELECT tx.* FROM tx WHERE EXISTS (SELECT FROM k)"""  # noqa: S608 - _COLUMNS and audit.INSERT are constants; values are bind parameters

# The same three rows for many admissions in one statement. `keyed` is false for a row whose key was taken (by
# another row, or a request earlier in the batch): the batch is then rolled back and split (see the module).
_ADMIT_MANY = f"""
    WITH input AS (
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::text[],
                             $8::text[], $9::text[], $10::text[], $11::bool[], $12::text[], $13::text[], $14::text[],
                             $15::timestamptz[], $16::uuid[], $17::text[], $18::timestamptz[], $19::text[],
                             $20::text[], $21::text[], $22::timestamptz[])
            WITH ORDINALITY AS i(id, client_id, ref_id, type, player_id, amount_cents, currency, round_id, game_id,
                                 original_ref_id, round_closed, metadata, request_hash, correlation_id, created_at,
                                 key_id, key, expires_at, actor, after, operator_id, send_by, ord)
    ), tx AS (
        INSERT INTO transactions AS t (id, client_id, ref_id, type, player_id, amount_cents, currency, round_id,
            game_id, original_ref_id, round_closed, metadata, request_hash, status, correlation_id, created_at,
            updated_at, operator_id, send_by)
        SELECT id, client_id, ref_id, type, player_id, amount_cents, currency, round_id, game_id, original_ref_id,
            round_closed, metadata::jsonb, request_hash, 'PENDING', correlation_id, created_at, created_at,
            operator_id, send_by
        FROM input ORDER BY ord
        ON CONFLICT DO NOTHING
        RETURNING {_COLUMNS}
    ), k AS (
        INSERT INTO idempotency_keys (id, key, scope, request_hash, status, transaction_id, created_at,
            updated_at, expires_at)
        SELECT i.key_id, i.key, i.client_id, i.request_hash, 'PROCESSING', tx.id, i.created_at, i.created_at,
            i.expires_at
        FROM input i JOIN tx USING (id) ORDER BY i.ord
        ON CONFLICT DO NOTHING
        RETURNING transaction_id
    ), audit AS (
        {audit.INSERT}
        SELECT 'transaction', k.transaction_id::text, 'ADMITTED', i.actor, NULL, i.after::jsonb,
            'admitted by the gateway'
        FROM k JOIN input i ON i.id = k.transaction_id
    )
    SELECT tx.*, EXISTS (SELECT FROM k WHERE k.transaction_id = tx.id) AS keyed FROM tx"""  # noqa: S608 - _COLUMNS and audit.INSERT are constants; values are bind parameters

# An expired key no longer replays: it makes room for its reuse.
_CLEAR_EXPIRED_KEY = "DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND expires_at <= now()"


class _Taken(Exception):
    """The admission statement wrote nothing: roll back (a transaction row may be in) and report a conflict."""


class _Split(Exception):
    """A batch that cannot be written as one (an item would half-land, or waited for a rival's lock): the group
    commit writes its items one by one, each with its own answer."""


class _Unpublished(Exception):
    """Kafka acknowledged only some of a batch's commands (`acked`); the batch was rolled back."""

    def __init__(self, acked: list[int], errors: dict[int, BaseException]) -> None:
        super().__init__("some commands were not acknowledged")
        self.acked = acked
        self.errors = errors


C = TypeVar("C")
# Produces the commands of a batch together: per command None once Kafka acknowledged it, else its error.
Publish = Callable[[Sequence[C]], Awaitable[Sequence[Exception | None]]]


@dataclass(frozen=True)
class _Pending(Generic[C]):
    admission: Admission
    command: C


# What a batch gives each request: its row, None (taken), or the error to raise for it alone.
_Outcome = StoredTransaction | None | HubError


async def create_admission_pool(settings: DatabaseSettings, *, size: int, lock_timeout_ms: int) -> asyncpg.Pool:
    return await db.create_pool(
        settings,
        size=size,
        reset_session=False,
        # A second request for a key/refId that another request is still admitting waits at most this long
        # for that admission's row before answering "in progress". Lookups take no row locks.
        server_settings={"lock_timeout": f"{int(lock_timeout_ms)}ms"},
        keep_idle=True,
    )


class TransactionStore(Generic[C]):
    """`C` is what `publish` produces: the command of an admission (`commands.PreparedCommand` in the app)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publish: Publish[C],
        *,
        retry_after_s: int,
        key_ttl_s: int,
        max_batch: int = 100,
        batches_in_flight: int = 1,
    ) -> None:
        self._pool = pool
        self._publish = publish
        self._retry_after_s = retry_after_s
        self._key_ttl = timedelta(seconds=key_ttl_s)
        self._admissions: GroupCommit[_Pending[C], _Outcome] = GroupCommit(
            "admit",
            self._admit_batch,
            max_batch=max_batch,
            max_in_flight=batches_in_flight,
            on_failure=OnFailure.SPLIT,
            # The database or Kafka down: every request of the batch answers 503 at once.
            # Duplicates of one request may share a batch: the first is written, the others collide (None) and
            # then find it, as they would across batches.
            shared_errors=(DatabaseUnavailableError, KafkaUnavailableError),
            observe=ADMISSION_BATCH_SIZE.observe,
        )

    async def close(self) -> None:
        await self._admissions.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[db.Connection]:
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}") from exc

    async def find_existing(self, client_id: str, key: str, ref_id: str) -> Existing | None:
        async with self._connection() as conn:
            key_row = await conn.fetchrow(
                f"""SELECT {_COLUMNS}, k.request_hash AS key_hash
                    FROM idempotency_keys k JOIN transactions t ON t.id = k.transaction_id
                    WHERE k.scope = $1 AND k.key = $2 AND k.expires_at > now()""",  # noqa: S608 - _COLUMNS is a constant column list
                client_id,
                key,
            )
            # The client's own refId first; another transaction only when it holds the operator id.
            ref_row = await conn.fetchrow(
                f"""SELECT {_COLUMNS} FROM transactions t
                    WHERE (t.client_id = $1 AND t.ref_id = $2) OR t.operator_id = $3
                    ORDER BY (t.client_id = $1 AND t.ref_id = $2) DESC LIMIT 1""",  # noqa: S608 - _COLUMNS is a constant column list
                client_id,
                ref_id,
                operator_id(client_id, ref_id),
            )
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
                f"SELECT {_COLUMNS} FROM transactions t WHERE t.client_id = $1 AND t.ref_id = $2",  # noqa: S608 - _COLUMNS is a constant column list
                client_id,
                ref_id,
            )
        return stored_from_row(row) if row is not None else None

    async def get_by_id(self, transaction_id: str) -> StoredTransaction | None:
        async with self._connection() as conn:
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM transactions t WHERE t.id = $1",  # noqa: S608 - _COLUMNS is a constant column list
                uuid.UUID(transaction_id),
            )
        return stored_from_row(row) if row is not None else None

    async def admit(
        self, admission: Admission, command: C, *, clear_expired_key: bool = False
    ) -> StoredTransaction | None:
        """Insert the rows, produce `command`, commit; any failure rolls everything back.

        None when the refId or the key is taken (committed, or committed by a concurrent admission while this
        one waited): nothing was written or published. An expired key counts as taken unless
        `clear_expired_key`, which deletes it first (a second round trip, kept off the common path, and off the
        group commit)."""
        if clear_expired_key:
            return await self._admit_alone(admission, command, clear_expired_key=True)
        outcome = await self._admissions.submit(_Pending(admission, command))
        if isinstance(outcome, HubError):
            raise outcome
        return outcome

    async def _admit_alone(
        self, admission: Admission, command: C, *, clear_expired_key: bool = False
    ) -> StoredTransaction | None:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                if clear_expired_key:
                    await conn.execute(_CLEAR_EXPIRED_KEY, admission.client_id, admission.idempotency_key)
                row = await conn.fetchrow(_ADMIT, *self._arguments(admission))
                if row is None:
                    raise _Taken
                [error] = await self._publish([command])
                if error is not None:
                    raise error
        except _Taken:
            return None
        except asyncpg.LockNotAvailableError as exc:
            raise RequestInProgressError(self._retry_after_s) from exc
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}") from exc
        return stored_from_row(row)

    async def _admit_batch(self, items: Sequence[_Pending[C]]) -> list[_Outcome]:
        if len(items) == 1:
            try:
                return [await self._admit_alone(items[0].admission, items[0].command)]
            except (RequestInProgressError, KafkaUnavailableError) as exc:
                return [exc]
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(_ADMIT_MANY, *self._columns([item.admission for item in items]))
                if not all(row["keyed"] for row in rows):
                    raise _Split
                by_id = {row["id"]: row for row in rows}
                written = [i for i, item in enumerate(items) if item.admission.transaction_id in by_id]
                await self._publish_all(items, written)
        except (_Split, asyncpg.LockNotAvailableError) as exc:
            raise _Split from exc
        except _Unpublished as unpublished:
            return await self._admit_acked(items, unpublished)
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}") from exc
        return [
            stored_from_row(by_id[item.admission.transaction_id]) if item.admission.transaction_id in by_id else None
            for item in items
        ]

    async def _admit_acked(self, items: Sequence[_Pending[C]], unpublished: _Unpublished) -> list[_Outcome]:
        """After a partial produce failure (rolled back): the acknowledged commands' rows written again, alone."""
        outcomes: list[_Outcome] = [None] * len(items)
        for index, error in unpublished.errors.items():
            outcomes[index] = error if isinstance(error, HubError) else KafkaUnavailableError(repr(error))
        acked = [items[i].admission for i in unpublished.acked]
        if not acked:
            return outcomes
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = {r["id"]: r for r in await conn.fetch(_ADMIT_MANY, *self._columns(acked))}
                for index in unpublished.acked:
                    tx_id = items[index].admission.transaction_id
                    # Not written now: the ledger inserted it from its command meanwhile (or a rival took the
                    # refId, and the command is ignored): what is stored under this id is the answer.
                    row = rows.get(tx_id) or await conn.fetchrow(
                        f"SELECT {_COLUMNS} FROM transactions t WHERE t.id = $1",  # noqa: S608 - _COLUMNS is a constant column list
                        tx_id,
                    )
                    outcomes[index] = stored_from_row(row) if row is not None else None
        except _UNAVAILABLE as exc:
            # Their commands are in Kafka: the ledger inserts their rows (the admission window, contract 1.3).
            error = DatabaseUnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}")
            for index in unpublished.acked:
                outcomes[index] = error
        return outcomes

    def _columns(self, admissions: Sequence[Admission]) -> list[list[Any]]:
        """`_ADMIT_MANY`'s arrays: `_arguments` of each admission, column by column."""
        return [list(column) for column in zip(*(self._arguments(a) for a in admissions), strict=True)]

    def _arguments(self, a: Admission) -> tuple[Any, ...]:
        req = a.request
        wire = req.to_wire()
        after = {**wire, "status": "PENDING", "idempotencyKey": a.idempotency_key, "correlationId": a.correlation_id}
        return (
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
            uuid.uuid4(),
            a.idempotency_key,
            a.admitted_at + self._key_ttl,
            f"gateway:{a.client_id}",
            orjson.dumps(after).decode(),
            a.operator_id,
            a.send_by,
        )

    async def _publish_all(self, items: Sequence[_Pending[C]], written: list[int]) -> None:
        """Produce the written items' commands together; raises `_Unpublished` unless Kafka acknowledged them all
        (or `KafkaUnavailableError` when it acknowledged none)."""
        results = await self._publish([items[i].command for i in written])
        errors: dict[int, BaseException] = {i: r for i, r in zip(written, results, strict=True) if r is not None}
        if not errors:
            return
        acked = [i for i in written if i not in errors]
        if not acked:
            first = next(iter(errors.values()))
            raise first if isinstance(first, KafkaUnavailableError) else KafkaUnavailableError(repr(first))
        raise _Unpublished(acked, errors)


class ForecastReads:
    """What admission control reads in the background (`admission_control`), on the shared pool: the budget's
    schedule and the open work, by client. Both are small: the budget's grants grouped by second, and open rows
    counted through their partial index."""

    def __init__(self, pool: asyncpg.Pool, operator: OperatorSettings) -> None:
        self._pool = pool
        self._operator = operator

    async def outlook(self) -> BudgetOutlook:
        try:
            return await read_outlook(self._pool, self._operator)
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}") from exc

    async def open_work(self) -> OpenWork:
        try:
            rows = await self._pool.fetch(
                """SELECT client_id, type = 'BET' AS bet, count(*)::int AS n FROM transactions
                   WHERE status IN ('PENDING', 'PROCESSING') GROUP BY 1, 2"""
            )
        except _UNAVAILABLE as exc:
            raise DatabaseUnavailableError(f"PostgreSQL unavailable: {type(exc).__name__}") from exc
        bets = {r["client_id"]: r["n"] for r in rows if r["bet"]}
        credits = sum(r["n"] for r in rows if not r["bet"])
        return OpenWork(credits=credits, bets=sum(bets.values()), bets_by_client=bets)
