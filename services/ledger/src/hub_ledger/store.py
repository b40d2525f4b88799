"""The ledger's database facade: each step of a command in ONE database transaction, and its background jobs'
queries. The SQL of the transitions (row, key, audit row, outbox event) is `hub_common.transitions`, shared
with hubctl; the facts the rules need are `hub_ledger.rule_queries`.

The two steps every command takes (begin: PENDING -> PROCESSING or final; finish: final) are group-committed
(`hub_common.batching`, a failed batch split item by item): the commands of different players waiting for a
step share one database transaction and one statement per kind of write, so a step costs a few round trips per
batch instead of per command. Each command's rows still change together or not at all. Locks are taken in one
order everywhere (players' advisory locks by hash, then rows by id), so two batches never wait for each other
in a cycle.

Ownership (`hub_common.transitions`): the begin step takes the lease of every transaction it sends (making it
PROCESSING, or taking over a PROCESSING one whose lease expired) in the same statement, and leaves alone a
transaction someone else holds (another replica, or an SRE's `hubctl tx resolve|replay`); `renew` and the final
step name the token the processor holds, so a processor that lost its lease changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
from opentelemetry import context as otel_context

from hub_common import audit, db, transitions
from hub_common.batching import GroupCommit, I, O, OnFailure, Run
from hub_common.schemas import TransactionCommand, TxStatus
from hub_common.transactions import COLUMNS, TxRow
from hub_common.transitions import Finish
from hub_ledger.metrics import DB_BATCH_SIZE
from hub_ledger.rule_queries import load_contexts, original_operator_ids
from hub_ledger.rules import CallOperator, Decision, decide

ACTOR = "ledger"
# The begin step's locks and reads in one round trip (migration 011's `ledger_lock_for_begin`): the players'
# advisory locks, always in one order (two batches never wait for each other in a cycle), then the rows FOR
# UPDATE with whether a refund tombstone names each BET's refId, read after the player locks were taken.
_LOCK_FOR_BEGIN = (
    f"SELECT {COLUMNS}, now() AS tx_now, b.tombstoned FROM ledger_lock_for_begin($1::uuid[], $2::text[]) AS b, "  # noqa: S608 - COLUMNS is a constant column list
    "LATERAL (SELECT (b.tx).*) AS t"
)
# The begin step also takes the player's advisory lock (one player's decisions never interleave, even across
# replicas during a rebalance) in the same round trip. Every path takes it before the row lock (it is computed
# with the row, below the row-locking step), so the two locks are always taken in one order.
_BEGIN_BY_ID = (
    f"SELECT {COLUMNS}, now() AS tx_now, pg_advisory_xact_lock(hashtext(player_id)) AS player_lock "  # noqa: S608 - COLUMNS is a constant column list
    "FROM transactions WHERE id = $1 FOR UPDATE"
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


@dataclass(frozen=True)
class Begun:
    """A transaction's row after its begin step, and what to do with it: None (final already, or held by someone
    else: nothing to do here), a `Finish` (the rules finished it without the operator) or a `CallOperator`
    (PROCESSING, its lease `row.lease_token` held by this process, to be sent)."""

    row: TxRow
    decision: Decision | None


# A step's batch runs in one task for many callers: each item carries its caller's trace context, so the event
# it writes continues the caller's trace, not the trace of whoever started the batch.


@dataclass(frozen=True)
class _Command:
    command: TransactionCommand
    correlation_id: str
    trace: otel_context.Context


@dataclass(frozen=True)
class _Final:
    transaction_id: uuid.UUID
    outcome: Finish
    lease_token: int
    trace: otel_context.Context


@dataclass(frozen=True)
class Compensation:
    transaction_id: uuid.UUID
    operator_transaction_id: str
    request: dict[str, Any]
    correlation_id: str | None
    attempts: int
    age_s: float


def _grouped(
    name: str, run: Run[I, O], key: Callable[[I], Hashable], max_batch: int, in_flight: int
) -> GroupCommit[I, O]:
    """A step of many transactions in one database transaction; a batch that fails is split, so one bad
    transaction fails alone (database-wide errors fail every caller at once)."""
    return GroupCommit(
        name,
        run,
        key=key,
        max_batch=max_batch,
        max_in_flight=in_flight,
        on_failure=OnFailure.SPLIT,
        shared_errors=SHARED_DB_ERRORS,
        observe=DB_BATCH_SIZE.labels(name).observe,
    )


class Store:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        lease_owner: str,
        lease_s: float,
        key_ttl: timedelta = timedelta(hours=24),
        max_batch: int = 100,
        batches_in_flight: int = 2,
    ) -> None:
        self._pool = pool
        self._lease = _LeaseTerms(lease_owner, lease_s)
        self._key_ttl = key_ttl
        # Commands of different players (the player queues never run two of one player at once) share one
        # database transaction per step.
        self._begins: GroupCommit[_Command, Begun | None] = _grouped(
            "begin", self._begin_commands, lambda item: item.command.transaction_id, max_batch, batches_in_flight
        )
        # Lease renewals of every transaction this process works on (heartbeats of those waiting for budget,
        # re-POSTs): one statement per batch, not one round trip each.
        self._renewals: GroupCommit[transitions.Renewal, bool] = _grouped(
            "renew", self._renew_many, lambda item: item.tx_id, max_batch, batches_in_flight
        )
        self._finishes: GroupCommit[_Final, TxRow | None] = _grouped(
            "finish", self._finish_many, lambda item: item.transaction_id, max_batch, batches_in_flight
        )

    async def close(self) -> None:
        await self._begins.close()
        await self._renewals.close()
        await self._finishes.close()

    # --- the steps of a command ----------------------------------------------------------------------------

    async def begin_command(self, cmd: TransactionCommand, correlation_id: str) -> Begun | None:
        """The command's begin step, its row inserted first when the gateway's commit was lost.

        None when the client's refId (or its operator id) belongs to another transaction (the gateway answered
        that one DUPLICATE_REF_ID).
        """
        return await self._begins.submit(_Command(cmd, correlation_id, otel_context.get_current()))

    async def _begin_commands(self, items: Sequence[_Command]) -> list[Begun | None]:
        ids = [uuid.UUID(item.command.transaction_id) for item in items]
        async with self._pool.acquire() as conn, conn.transaction():
            records = {
                r["id"]: r for r in await conn.fetch(_LOCK_FOR_BEGIN, ids, [item.command.player_id for item in items])
            }
            for tx_id, item in zip(ids, items, strict=True):
                if tx_id not in records:
                    await transitions.insert_from_command(
                        conn, item.command, item.correlation_id, key_ttl=self._key_ttl, actor=ACTOR
                    )
                    # Ours, or a concurrent insert of the same command; none: the refId is another transaction's.
                    record = await conn.fetchrow(transitions.LOCK_BY_ID, tx_id)
                    if record is not None:
                        records[tx_id] = record
            if not records:
                return [None] * len(items)
            now = next(iter(records.values()))["tx_now"]
            rows = [TxRow.from_record(records[tx_id]) for tx_id in ids if tx_id in records]
            traces = {tx_id: item.trace for tx_id, item in zip(ids, items, strict=True)}
            # Read with the locks; a row inserted just now carries no such column: its tombstone is read below.
            known = {tx_id: r["tombstoned"] for tx_id, r in records.items() if "tombstoned" in r}
            begun = await _begin_many(conn, rows, now, self._lease, traces, tombstoned=known)
            return [begun.get(tx_id) for tx_id in ids]

    async def begin(self, tx_id: uuid.UUID) -> Begun:
        """Decide what to do with the transaction now and record the first step of it (the sweeper's path)."""
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(_BEGIN_BY_ID, tx_id)
            assert record is not None  # the sweeper read it; rows are never deleted
            tx = TxRow.from_record(record)
            return (await _begin_many(conn, [tx], record["tx_now"], self._lease))[tx.id]

    async def not_at_operator(self, tx_id: uuid.UUID, token: int) -> Begun | None:
        """A transaction marked possibly sent (held under `token`) that the operator has no record of: cleared
        (`transitions.not_at_operator`) and decided by the ordinary rules, in one database transaction. None when
        the lease was lost meanwhile (taken over, or the transaction finished)."""
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(_BEGIN_BY_ID, tx_id)
            assert record is not None  # rows are never deleted
            tx = TxRow.from_record(record)
            if tx.status.is_final or tx.lease_token != token:
                return None
            now = record["tx_now"]
            cleared = await transitions.not_at_operator(conn, tx, now, actor=ACTOR)
            return (await _begin_many(conn, [cleared], now, self._lease))[tx.id]

    async def renew(self, tx_id: uuid.UUID, token: int, *, count_attempt: bool = False) -> bool:
        """Extend the lease `token` (and count a POST about to be sent); False when the lease was lost or the
        transaction is final."""
        return await self._renewals.submit(transitions.Renewal(tx_id, token, count_attempt))

    async def _renew_many(self, items: Sequence[transitions.Renewal]) -> list[bool]:
        async with self._pool.acquire() as conn, conn.transaction():
            held = await transitions.renew_many(conn, items, lease_s=self._lease.seconds)
        return [item.tx_id in held for item in items]

    async def finish(self, tx_id: uuid.UUID, outcome: Finish, lease_token: int) -> TxRow | None:
        """Final transition by the holder of `lease_token`; None when the transaction was already final or its
        lease was taken over (this process is fenced)."""
        return await self._finishes.submit(_Final(tx_id, outcome, lease_token, otel_context.get_current()))

    async def _finish_many(self, items: Sequence[_Final]) -> list[TxRow | None]:
        # Two statements and no BEGIN/COMMIT: the rows are ours under our leases, so they are read unlocked and
        # `finish_many` locks, checks the tokens and writes in one statement (two round trips, not four).
        async with self._pool.acquire() as conn:
            records = {r["id"]: r for r in await conn.fetch(transitions.READ_BY_IDS, [i.transaction_id for i in items])}
            if not records:
                return [None] * len(items)
            now = next(iter(records.values()))["tx_now"]
            found = [
                (TxRow.from_record(records[i.transaction_id]), i.outcome, i.lease_token)
                for i in items
                if i.transaction_id in records
            ]
            traces = {i.transaction_id: i.trace for i in items}
            done = await transitions.finish_many(conn, found, now, actor=ACTOR, traces=traces)
            return [done.get(i.transaction_id) for i in items]

    # --- background jobs ---------------------------------------------------------------------------------

    async def stale_open(self, older_than_s: float, limit: int = 100) -> list[TxRow]:
        """Open transactions that are their player's oldest open one (so finishing them cannot overtake an
        earlier transaction of the same player), of a player none of whose rows was touched for `older_than_s`;
        WINs and REFUNDs first (money owed to players), then by age.

        The whole player must be quiet, not only the row: a PENDING row keeps its admission time until its
        player's queue reaches it, so right after the previous transaction of a busy player finished, the next
        one looks old although a consumer is about to start it; taking it over then sends it twice.
        """
        records = await self._pool.fetch(
            f"""SELECT {COLUMNS} FROM transactions t
                WHERE t.status IN ('PENDING', 'PROCESSING') AND t.updated_at < now() - make_interval(secs => $1)
                  AND (t.lease_expires_at IS NULL OR t.lease_expires_at <= now())
                  AND NOT EXISTS (SELECT 1 FROM transactions e WHERE e.player_id = t.player_id
                                  AND ((e.status IN ('PENDING', 'PROCESSING') AND e.created_at < t.created_at)
                                       OR e.updated_at >= now() - make_interval(secs => $1)))
                ORDER BY t.type = 'BET', t.created_at LIMIT $2""",  # noqa: S608 - COLUMNS is a constant column list
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
                transaction_id=r["transaction_id"],
                operator_transaction_id=r["operator_transaction_id"],
                request=orjson.loads(r["request"]),
                correlation_id=r["correlation_id"],
                attempts=r["attempts"],
                age_s=r["age_s"],
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
                await audit.record(
                    conn,
                    audit.AuditEntry(
                        "transaction",
                        str(tx_id),
                        "compensation",
                        ACTOR,
                        None,
                        {"compensation": status},
                        error or "compensating refund confirmed by the operator",
                    ),
                )

    async def delete_expired_keys(self) -> int:
        result = await self._pool.execute("DELETE FROM idempotency_keys WHERE expires_at < now()")
        return int(result.split()[-1])


@dataclass(frozen=True)
class _LeaseTerms:
    owner: str
    seconds: float


async def _begin_many(
    conn: db.Connection,
    rows: Sequence[TxRow],
    now: datetime,
    lease: _LeaseTerms,
    traces: Mapping[uuid.UUID, otel_context.Context] | None = None,
    *,
    tombstoned: Mapping[uuid.UUID, bool] | None = None,
) -> dict[uuid.UUID, Begun]:
    """Each row's decision, its first step recorded; the rows are locked (FOR UPDATE) by this transaction, with
    their players' advisory locks. A row someone holds (`transitions.may_take` is false) is left to its holder.
    `tombstoned`: what was already read of BETs' refund tombstones under those locks (the rest is read here)."""
    result: dict[uuid.UUID, Begun] = {}
    free = [tx for tx in rows if transitions.may_take(tx, now)]
    free_ids = {tx.id for tx in free}
    # Possibly sent (a database restore): no rule may assume it was never sent, so none is applied before the
    # operator has been asked; the lease is taken as for a resumed transaction (the status stays).
    doubted = [tx for tx in free if tx.possibly_sent_at is not None]
    doubted_ids = {tx.id for tx in doubted}
    pending = [tx for tx in free if tx.status is TxStatus.PENDING and tx.id not in doubted_ids]
    resumed = [tx for tx in free if tx.status is TxStatus.PROCESSING and tx.id not in doubted_ids]
    contexts = await load_contexts(conn, pending, tombstoned or {})
    originals = await original_operator_ids(conn, resumed)
    to_start: list[TxRow] = []
    to_finish: list[tuple[TxRow, Finish, int]] = []
    for tx in rows:
        if tx.id not in free_ids:
            result[tx.id] = Begun(tx, None)
        elif tx.id in doubted_ids:
            result[tx.id] = Begun(tx, CallOperator(resolve_first=True))
        elif tx.status is TxStatus.PROCESSING:
            result[tx.id] = Begun(tx, CallOperator(original_transaction_id=originals.get(tx.id)))
        else:
            expired = tx.send_by is not None and now >= tx.send_by
            decision = decide(tx, replace(contexts[tx.id], expired=expired))
            if isinstance(decision, Finish):
                to_finish.append((tx, decision, tx.lease_token))
                result[tx.id] = Begun(tx, decision)
            else:
                to_start.append(tx)
                result[tx.id] = Begun(tx, replace(decision, attempt_noted=True))
    for tx_id, done in (await transitions.finish_many(conn, to_finish, now, actor=ACTOR, traces=traces)).items():
        if done is not None:
            result[tx_id] = replace(result[tx_id], row=done)
    for started in await transitions.start_many(
        conn, to_start, now, actor=ACTOR, lease_owner=lease.owner, lease_s=lease.seconds, traces=traces
    ):
        result[started.id] = replace(result[started.id], row=started)
    taking = [*resumed, *doubted]
    for taken in await transitions.take_over_many(conn, taking, now, lease_owner=lease.owner, lease_s=lease.seconds):
        result[taken.id] = replace(result[taken.id], row=taken)
    return result
