"""PostgreSQL side of the ledger: every state change, its audit row and its outbox event in ONE transaction.

A transition is guarded by the status it leaves (`WHERE status IN (...)`), so two processes racing on one
transaction (a rebalance, the sweeper) finish it once; the loser sees None and does nothing more.

The two steps every command takes (begin: PENDING -> PROCESSING or final; finish: final) are group-committed
(`hub_common.batching`, a failed batch split item by item): the commands of different players waiting for a
step share one database transaction and one statement per kind of write, so a step costs a few round trips per
batch instead of per command. Each command's rows still change together or not at all. Locks are taken in one
order everywhere (players' advisory locks by hash, then rows by id), so two batches never wait for each other
in a cycle.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from hub_common.batching import GroupCommit, OnFailure
from hub_common.envelope import wrap
from hub_common.kafka import TRANSACTIONS
from hub_common.schemas import ErrorCode, TransactionCommand, TransactionEvent, TxStatus, TxType
from hub_common.telemetry import kafka_headers, new_correlation_id
from hub_ledger.metrics import DB_BATCH_SIZE
from hub_ledger.rules import CallOperator, Decision, Finish, RuleContext, TxRow, decide

ACTOR = "ledger"
COLUMNS = (
    "id, client_id, ref_id, type, player_id, amount_cents, currency, round_id, game_id, original_ref_id, "
    "status, reason, error_code, balance_cents, operator_transaction_id, correlation_id, attempts, "
    "created_at, updated_at, completed_at"
)
_OPEN = ("PENDING", "PROCESSING")
# `now()` is the transaction's start time, the value every `= now()` below writes: with it the new row (and
# the event describing it) is known before the write, so a transition is one statement.
_LOCK_BY_ID = f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE id = $1 FOR UPDATE"
_LOCK_BY_IDS = f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
_LOCK_BY_REFS = (
    f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE ref_id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)
_LOCK_BY_REF = f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE ref_id = $1 FOR UPDATE"
# Many players' advisory locks, always in one order (two batches never wait for each other in a cycle).
_LOCK_PLAYERS = """SELECT pg_advisory_xact_lock(h)
                   FROM (SELECT DISTINCT hashtext(p) AS h FROM unnest($1::text[]) AS p ORDER BY 1 OFFSET 0) AS s"""
# The begin steps also take the player's advisory lock (one player's decisions never interleave, even across
# replicas during a rebalance) in the same round trip. Every path takes it before the row lock (it is computed
# with the row, below the row-locking step), so the two locks are always taken in one order.
_BEGIN_BY_ID = (
    f"SELECT {COLUMNS}, now() AS tx_now, pg_advisory_xact_lock(hashtext(player_id)) AS player_lock "
    "FROM transactions WHERE id = $1 FOR UPDATE"
)
_BEGIN_BY_REF = (
    f"SELECT {COLUMNS}, now() AS tx_now, pg_advisory_xact_lock(hashtext(player_id)) AS player_lock "
    "FROM transactions WHERE ref_id = $1 FOR UPDATE"
)


# Failures of the database itself, not of one transaction's data (see `hub_common.batching`).
SHARED_DB_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)

# A transaction's row after its begin step, and what to do with it (see `_begin_many`).
Begun = tuple[TxRow, Decision | None]


@dataclass(frozen=True)
class Compensation:
    transaction_id: uuid.UUID
    operator_transaction_id: str
    request: dict[str, Any]
    correlation_id: str | None
    attempts: int
    age_s: float


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def _snapshot(tx: TxRow) -> dict[str, Any]:
    return {
        "status": tx.status.value,
        "reason": tx.reason,
        "errorCode": tx.error_code,
        "balanceCents": tx.balance_cents,
        "operatorTransactionId": tx.operator_transaction_id,
        "attempts": tx.attempts,
    }


class Store:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        key_ttl: timedelta = timedelta(hours=24),
        max_batch: int = 100,
        batches_in_flight: int = 2,
    ) -> None:
        self._pool = pool
        self._key_ttl = key_ttl
        # Commands of different players (the player queues never run two of one player at once) share one
        # database transaction per step: see `hub_common.batching`.
        self._begins: GroupCommit[tuple[TransactionCommand, str], Begun | None] = GroupCommit(
            "begin",
            self._begin_commands,
            key=lambda item: item[0].ref_id,
            max_batch=max_batch,
            max_in_flight=batches_in_flight,
            on_failure=OnFailure.SPLIT,
            shared_errors=SHARED_DB_ERRORS,
            observe=DB_BATCH_SIZE.labels("begin").observe,
        )
        self._finishes: GroupCommit[tuple[uuid.UUID, Finish], TxRow | None] = GroupCommit(
            "finish",
            self._finish_many,
            key=lambda item: item[0],
            max_batch=max_batch,
            max_in_flight=batches_in_flight,
            on_failure=OnFailure.SPLIT,
            shared_errors=SHARED_DB_ERRORS,
            observe=DB_BATCH_SIZE.labels("finish").observe,
        )

    async def close(self) -> None:
        await self._begins.close()
        await self._finishes.close()

    async def ensure(self, cmd: TransactionCommand, correlation_id: str) -> TxRow | None:
        """The command's row, inserted from the command when the gateway's commit was lost.

        None when the refId belongs to another transaction (the gateway answered that one DUPLICATE_REF_ID).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(f"SELECT {COLUMNS} FROM transactions WHERE ref_id = $1", cmd.ref_id)
            if record is None:
                record = await self._insert(conn, cmd, correlation_id)
            tx = TxRow.from_record(record)
        return tx if str(tx.id) == cmd.transaction_id else None

    async def _insert(self, conn: asyncpg.Connection, cmd: TransactionCommand, correlation_id: str) -> Any:
        record = await conn.fetchrow(
            f"""INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, round_id,
                    game_id, original_ref_id, round_closed, metadata, request_hash, status, correlation_id, created_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, 'PENDING', $14, $15)
                ON CONFLICT DO NOTHING RETURNING {COLUMNS}""",
            uuid.UUID(cmd.transaction_id),
            cmd.client_id,
            cmd.ref_id,
            cmd.type.value,
            cmd.player_id,
            cmd.amount_cents,
            cmd.currency,
            cmd.round_id,
            cmd.game_id,
            cmd.original_ref_id,
            cmd.round_closed,
            _json(cmd.metadata),
            cmd.request_hash,
            correlation_id,
            cmd.admitted_at,
        )
        if record is None:  # a concurrent insert won
            return await conn.fetchrow(f"SELECT {COLUMNS} FROM transactions WHERE ref_id = $1", cmd.ref_id)
        tx = TxRow.from_record(record)
        if cmd.idempotency_key is not None:
            await conn.execute(
                """INSERT INTO idempotency_keys (id, key, scope, request_hash, status, transaction_id, expires_at)
                   VALUES ($1, $2, $3, $4, 'PROCESSING', $5, $6) ON CONFLICT (scope, key) DO NOTHING""",
                uuid.uuid4(),
                cmd.idempotency_key,
                cmd.client_id,
                cmd.request_hash,
                tx.id,
                cmd.admitted_at + self._key_ttl,
            )
        await conn.execute(
            _audit_insert(1),
            str(tx.id),
            "created",
            ACTOR,
            None,
            _json(_snapshot(tx)),
            "row missing at the ledger: inserted from the command",
        )
        return record

    async def begin_command(self, cmd: TransactionCommand, correlation_id: str) -> Begun | None:
        """`ensure` and `begin` in one database transaction (the usual path of a command).

        None when the refId belongs to another transaction (the gateway answered that one DUPLICATE_REF_ID).
        """
        return await self._begins.submit((cmd, correlation_id))

    async def _begin_commands(self, items: Sequence[tuple[TransactionCommand, str]]) -> list[Begun | None]:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_LOCK_PLAYERS, [cmd.player_id for cmd, _ in items])
            records = {r["ref_id"]: r for r in await conn.fetch(_LOCK_BY_REFS, [cmd.ref_id for cmd, _ in items])}
            for cmd, correlation_id in items:
                if cmd.ref_id not in records:
                    await self._insert(conn, cmd, correlation_id)
                    # Ours, or a concurrent winner's.
                    records[cmd.ref_id] = await conn.fetchrow(_LOCK_BY_REF, cmd.ref_id)
            rows = [TxRow.from_record(records[cmd.ref_id]) for cmd, _ in items]
            now = records[items[0][0].ref_id]["tx_now"]
            mine = [tx if str(tx.id) == cmd.transaction_id else None for tx, (cmd, _) in zip(rows, items, strict=True)]
            begun = await _begin_many(conn, [tx for tx in mine if tx is not None], now)
            return [begun[tx.id] if tx is not None else None for tx in mine]

    async def begin(self, tx_id: uuid.UUID) -> tuple[TxRow, Decision | None]:
        """Decide what to do with the transaction now and record the first step of it.

        Returns (row, None) for a final row (nothing to do), (row, Finish) when the rules finished it without
        the operator, (row, CallOperator) once it is PROCESSING.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(_BEGIN_BY_ID, tx_id)
            tx = TxRow.from_record(record)
            return (await _begin_many(conn, [tx], record["tx_now"]))[tx.id]

    async def note_attempt(self, tx_id: uuid.UUID) -> None:
        """Count a POST about to be sent (and show the sweeper the transaction is being worked on)."""
        await self._pool.execute(
            "UPDATE transactions SET attempts = attempts + 1, updated_at = now() WHERE id = $1", tx_id
        )

    async def touch(self, tx_id: uuid.UUID) -> None:
        await self._pool.execute("UPDATE transactions SET updated_at = now() WHERE id = $1", tx_id)

    async def finish(self, tx_id: uuid.UUID, outcome: Finish) -> TxRow | None:
        """Final transition; None when the transaction was already final."""
        return await self._finishes.submit((tx_id, outcome))

    async def _finish_many(self, items: Sequence[tuple[uuid.UUID, Finish]]) -> list[TxRow | None]:
        async with self._pool.acquire() as conn, conn.transaction():
            records = {r["id"]: r for r in await conn.fetch(_LOCK_BY_IDS, [tx_id for tx_id, _ in items])}
            if not records:
                return [None] * len(items)
            now = next(iter(records.values()))["tx_now"]
            found = [(TxRow.from_record(records[i]), outcome) for i, outcome in items if i in records]
            done = await _finish_many(conn, found, now)
            return [done.get(tx_id) for tx_id, _ in items]

    async def fail_and_compensate(self, tx_id: uuid.UUID, outcome: Finish, request: dict[str, Any]) -> TxRow | None:
        """FAILED, plus the compensating REFUND the compensation job will send until the operator confirms it."""
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(_LOCK_BY_ID, tx_id)
            done = await _finish(conn, TxRow.from_record(record), outcome, record["tx_now"])
            if done is not None:
                await conn.execute(
                    """INSERT INTO ledger_compensations (transaction_id, operator_transaction_id, request)
                       VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING""",
                    tx_id,
                    request["transactionId"],
                    _json(request),
                )
            return done

    # --- background jobs ---------------------------------------------------------------------------------

    async def stale_open(self, older_than_s: float, limit: int = 100) -> list[TxRow]:
        """Open transactions that are their player's oldest open one (so finishing them cannot overtake an
        earlier transaction of the same player), of a player none of whose rows was touched for `older_than_s`.

        The whole player must be quiet, not only the row: a PENDING row keeps its admission time until its
        player's queue reaches it, so right after the previous transaction of a busy player finished, the next
        one looks old although a consumer is about to start it; taking it over then sends it twice.
        """
        records = await self._pool.fetch(
            f"""SELECT {COLUMNS} FROM transactions t
                WHERE t.status IN ('PENDING', 'PROCESSING') AND t.updated_at < now() - make_interval(secs => $1)
                  AND NOT EXISTS (SELECT 1 FROM transactions e WHERE e.player_id = t.player_id
                                  AND ((e.status IN ('PENDING', 'PROCESSING') AND e.created_at < t.created_at)
                                       OR e.updated_at >= now() - make_interval(secs => $1)))
                ORDER BY t.created_at LIMIT $2""",
            older_than_s,
            limit,
        )
        return [TxRow.from_record(r) for r in records]

    async def pending_compensations(self, limit: int = 50) -> list[Compensation]:
        records = await self._pool.fetch(
            """SELECT c.transaction_id, c.operator_transaction_id, c.request, c.attempts, t.correlation_id,
                      extract(epoch FROM now() - c.created_at)::float8 AS age_s
               FROM ledger_compensations c JOIN transactions t ON t.id = c.transaction_id
               WHERE c.status = 'PENDING' ORDER BY c.created_at LIMIT $1""",
            limit,
        )
        return [
            Compensation(
                r["transaction_id"],
                r["operator_transaction_id"],
                orjson.loads(r["request"]),
                r["correlation_id"],
                r["attempts"],
                r["age_s"],
            )
            for r in records
        ]

    async def settle_compensation(self, tx_id: uuid.UUID, status: str, error: str | None) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """UPDATE ledger_compensations SET status = $2, last_error = $3, attempts = attempts + 1,
                   updated_at = now() WHERE transaction_id = $1""",
                tx_id,
                status,
                error,
            )
            if status != "PENDING":
                await conn.execute(
                    """INSERT INTO audit_log (entity, entity_id, action, actor, before, after, reason)
                       VALUES ('transaction', $1, 'compensation', $2, NULL, $3::jsonb, $4)""",
                    str(tx_id),
                    ACTOR,
                    _json({"compensation": status}),
                    error or "compensating refund confirmed by the operator",
                )

    async def delete_expired_keys(self) -> int:
        result = await self._pool.execute("DELETE FROM idempotency_keys WHERE expires_at < now()")
        return int(result.split()[-1])

    async def purge_delivered_webhooks(self, older_than_days: int) -> int:
        result = await self._pool.execute(
            """DELETE FROM webhook_outbox WHERE status = 'DELIVERED'
               AND delivered_at < now() - make_interval(days => $1)""",
            older_than_days,
        )
        return int(result.split()[-1])


async def _context(conn: asyncpg.Connection, tx: TxRow) -> RuleContext:
    if tx.type.value == "BET":
        tombstoned = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM refund_tombstones WHERE ref_id = $1)", tx.ref_id)
        return RuleContext(tombstoned=tombstoned)
    if tx.type.value == "WIN":
        refunded = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM refund_tombstones WHERE ref_id = $3)
                   OR EXISTS (SELECT 1 FROM transactions b WHERE b.type = 'BET' AND b.player_id = $1
                      AND ((b.round_id IS NOT NULL AND b.round_id = $2) OR b.ref_id = $3)
                      AND (EXISTS (SELECT 1 FROM transactions r WHERE r.type = 'REFUND' AND r.status = 'COMPLETED'
                                   AND r.original_ref_id = b.ref_id)
                           OR EXISTS (SELECT 1 FROM ledger_compensations c WHERE c.transaction_id = b.id)))""",
            tx.player_id,
            tx.round_id,
            tx.original_ref_id,
        )
        return RuleContext(bet_refunded=refunded)
    original = await conn.fetchrow(f"SELECT {COLUMNS} FROM transactions WHERE ref_id = $1", tx.original_ref_id)
    earlier = await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM transactions WHERE type = 'REFUND' AND original_ref_id = $1 AND id <> $2
            AND status IN ('COMPLETED', 'REJECTED') ORDER BY completed_at, created_at LIMIT 1""",
        tx.original_ref_id,
        tx.id,
    )
    bet = TxRow.from_record(original) if original is not None else None
    settled = False
    if bet is not None:
        settled = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM transactions w WHERE w.type = 'WIN' AND w.status = 'COMPLETED'
                   AND w.player_id = $1
                   AND ((w.round_id IS NOT NULL AND w.round_id = $2) OR w.original_ref_id = $3))""",
            bet.player_id,
            bet.round_id,
            bet.ref_id,
        )
    return RuleContext(
        original=bet,
        earlier_refund=TxRow.from_record(earlier) if earlier is not None else None,
        bet_settled=settled,
    )


async def _begin_many(conn: asyncpg.Connection, rows: Sequence[TxRow], now: datetime) -> dict[uuid.UUID, Begun]:
    """Each row's decision, its first step recorded; the rows are locked (FOR UPDATE) by this transaction, with
    their players' advisory locks. (row, None): final already, nothing to do; (row, Finish): the rules finished
    it without the operator; (row, CallOperator): PROCESSING, to be sent."""
    result: dict[uuid.UUID, Begun] = {}
    pending = [tx for tx in rows if tx.status is TxStatus.PENDING]
    bets = [tx.ref_id for tx in pending if tx.type is TxType.BET]
    tombstoned: set[str] = set()
    if bets:
        found = await conn.fetch("SELECT ref_id FROM refund_tombstones WHERE ref_id = ANY($1::text[])", bets)
        tombstoned = {r["ref_id"] for r in found}
    to_start: list[TxRow] = []
    to_finish: list[tuple[TxRow, Finish]] = []
    for tx in rows:
        if tx.status.is_final:
            result[tx.id] = (tx, None)
        elif tx.status is TxStatus.PROCESSING:
            result[tx.id] = (tx, CallOperator(original_transaction_id=tx.original_ref_id))
        else:
            context = (
                RuleContext(tombstoned=tx.ref_id in tombstoned) if tx.type is TxType.BET else await _context(conn, tx)
            )
            decision = decide(tx, context)
            if isinstance(decision, Finish):
                to_finish.append((tx, decision))
                result[tx.id] = (tx, decision)
            else:
                to_start.append(tx)
                result[tx.id] = (tx, replace(decision, attempt_noted=True))
    for tx_id, done in (await _finish_many(conn, to_finish, now)).items():
        if done is not None:
            result[tx_id] = (done, result[tx_id][1])
    for started in await _start_many(conn, to_start, now):
        result[started.id] = (started, result[started.id][1])
    return result


async def _start_many(conn: asyncpg.Connection, rows: Sequence[TxRow], now: datetime) -> list[TxRow]:
    """PENDING -> PROCESSING (locked rows), with their audit rows and outbox events, in one statement.

    The first POST is counted here, in the same commit: `note_attempt` would be one more round trip.
    """
    if not rows:
        return []
    started = [replace(tx, status=TxStatus.PROCESSING, attempts=tx.attempts + 1, updated_at=now) for tx in rows]
    audits = [_audit_args(tx, new, "processing", "sent to the operator") for tx, new in zip(rows, started, strict=True)]
    events = [_event_args(new, None) for new in started]
    await conn.execute(
        """WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::bytea[],
                                     $7::text[])
                    WITH ORDINALITY AS i(id, before, after, event_id, key, value, headers, ord)),
            moved AS (UPDATE transactions t SET status = 'PROCESSING', attempts = t.attempts + 1, updated_at = now()
                      FROM input i WHERE t.id = i.id RETURNING t.id),
            audit AS (INSERT INTO audit_log (entity, entity_id, action, actor, before, after, reason)
                      SELECT 'transaction', i.id::text, 'processing', $8::text, i.before::jsonb, i.after::jsonb,
                             'sent to the operator'
                      FROM input i JOIN moved USING (id))
           INSERT INTO event_outbox (event_id, topic, key, value, headers)
           SELECT i.event_id, $9::text, i.key, i.value, i.headers::jsonb FROM input i JOIN moved USING (id)
           ORDER BY i.ord""",
        [tx.id for tx in started],
        [a[3] for a in audits],
        [a[4] for a in audits],
        [e[0] for e in events],
        [e[2] for e in events],
        [e[3] for e in events],
        [e[4] for e in events],
        ACTOR,
        TRANSACTIONS,
    )
    return started


async def _finish(conn: asyncpg.Connection, tx: TxRow, outcome: Finish, now: datetime) -> TxRow | None:
    """Final transition of `tx` (locked by this transaction, read at `now`); None when it was already final."""
    return (await _finish_many(conn, [(tx, outcome)], now)).get(tx.id)


async def _finish_many(
    conn: asyncpg.Connection, items: Sequence[tuple[TxRow, Finish]], now: datetime
) -> dict[uuid.UUID, TxRow | None]:
    """Final transitions of locked rows read at `now` (the transaction's `now()`, which the rows get); a row
    that was already final maps to None.

    One statement: the rows, their idempotency keys, refund tombstones, audit rows and outbox events.
    """
    result: dict[uuid.UUID, TxRow | None] = {tx.id: None for tx, _ in items}
    done: list[tuple[TxRow, Finish, TxRow]] = []
    for tx, outcome in items:
        if tx.status.value not in _OPEN:
            continue
        new = replace(
            tx,
            status=outcome.status,
            reason=outcome.reason,
            error_code=outcome.error_code.value if outcome.error_code else None,
            balance_cents=outcome.balance_cents,
            operator_transaction_id=outcome.operator_transaction_id,
            updated_at=now,
            completed_at=now,
        )
        done.append((tx, outcome, new))
    if not done:
        return result
    audits = [_audit_args(tx, new, outcome.status.value.lower(), outcome.reason) for tx, outcome, new in done]
    events = [_event_args(new, outcome.error_code) for _, outcome, new in done]
    finished = await conn.fetch(
        """WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                                     $7::text[], $8::text[], $9::text[], $10::text[], $11::uuid[], $12::text[],
                                     $13::bytea[], $14::text[])
                    WITH ORDINALITY AS i(id, status, reason, error_code, balance_cents, operator_transaction_id,
                                         tombstone, action, before, after, event_id, key, value, headers, ord)),
            done AS (UPDATE transactions t SET status = i.status, reason = i.reason, error_code = i.error_code,
                            balance_cents = i.balance_cents, operator_transaction_id = i.operator_transaction_id,
                            completed_at = now(), updated_at = now()
                     FROM input i WHERE t.id = i.id AND t.status = ANY($15::text[]) RETURNING t.id),
            keys AS (UPDATE idempotency_keys k SET status = 'COMPLETED', updated_at = now()
                     WHERE k.transaction_id IN (SELECT id FROM done)),
            tombstone AS (INSERT INTO refund_tombstones (ref_id, refund_transaction_id)
                          SELECT i.tombstone, i.id FROM input i JOIN done USING (id) WHERE i.tombstone IS NOT NULL
                          ON CONFLICT DO NOTHING),
            audit AS (INSERT INTO audit_log (entity, entity_id, action, actor, before, after, reason)
                      SELECT 'transaction', i.id::text, i.action, $16::text, i.before::jsonb, i.after::jsonb, i.reason
                      FROM input i JOIN done USING (id)),
            event AS (INSERT INTO event_outbox (event_id, topic, key, value, headers)
                      SELECT i.event_id, $17::text, i.key, i.value, i.headers::jsonb FROM input i JOIN done USING (id)
                      ORDER BY i.ord)
           SELECT id FROM done""",
        [new.id for _, _, new in done],
        [new.status.value for _, _, new in done],
        [new.reason for _, _, new in done],
        [new.error_code for _, _, new in done],
        [new.balance_cents for _, _, new in done],
        [new.operator_transaction_id for _, _, new in done],
        [tx.original_ref_id if outcome.tombstone and tx.original_ref_id else None for tx, outcome, _ in done],
        [a[1] for a in audits],
        [a[3] for a in audits],
        [a[4] for a in audits],
        [e[0] for e in events],
        [e[2] for e in events],
        [e[3] for e in events],
        [e[4] for e in events],
        list(_OPEN),
        ACTOR,
        TRANSACTIONS,
    )
    updated = {r["id"] for r in finished}
    for _, _, new in done:
        if new.id in updated:
            result[new.id] = new
    return result


def _audit_insert(first: int) -> str:
    """`INSERT INTO audit_log ... SELECT` of the 6 values of `_audit_args`, numbered from `$first`."""
    p = [f"${i}" for i in range(first, first + 6)]
    return f"""INSERT INTO audit_log (entity, entity_id, action, actor, before, after, reason)
               SELECT 'transaction', {p[0]}::text, {p[1]}::text, {p[2]}::text, {p[3]}::jsonb, {p[4]}::jsonb,
                      {p[5]}::text"""


def _outbox_insert(first: int) -> str:
    """`INSERT INTO event_outbox ... SELECT` of the 5 values of `_event_args`, numbered from `$first`."""
    p = [f"${i}" for i in range(first, first + 5)]
    return f"""INSERT INTO event_outbox (event_id, topic, key, value, headers)
               SELECT {p[0]}::uuid, {p[1]}::text, {p[2]}::text, {p[3]}::bytea, {p[4]}::jsonb"""


def _audit_args(before: TxRow, after: TxRow, action: str, reason: str | None) -> tuple[Any, ...]:
    return (str(after.id), action, ACTOR, _json(_snapshot(before)), _json(_snapshot(after)), reason)


def _event_args(tx: TxRow, error_code: ErrorCode | None) -> tuple[Any, ...]:
    event = TransactionEvent(client_id=tx.client_id, error_code=error_code, transaction=tx.resource())
    envelope = wrap(event, correlation_id=tx.correlation_id or new_correlation_id())
    headers = [[k, v.decode(errors="replace")] for k, v in kafka_headers(envelope.correlation_id)]
    return (uuid.UUID(envelope.event_id), TRANSACTIONS, tx.ref_id, envelope.encode(), _json(headers))
