"""Every change of a transaction's status after admission, with its audit row and its `hub.transactions` event.

The ledger and hubctl both change transactions through these functions, so a transition writes the same rows
whoever makes it: the row, its idempotency key, the audit row (the 6-field `snapshot` before and after) and,
for a status clients must hear of, an `event_outbox` row that the ledger's relay publishes. Each runs on the
caller's connection inside its database transaction, on rows the caller locked (`lock`, or the ledger's own
batched locking), and read at `now`: the transaction's `now()`, the value every `= now()` here writes, so the
new row (and the event describing it) is known before the write and a transition is one statement.

A final transition is guarded by the status it leaves (`WHERE status IN (open)`): two processes racing on one
transaction (a rebalance, the sweeper, an SRE) finish it once; the loser sees None.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson

from hub_common import audit, db
from hub_common.envelope import wrap
from hub_common.kafka import TRANSACTIONS
from hub_common.schemas import ErrorCode, TransactionCommand, TransactionEvent, TxStatus
from hub_common.telemetry import kafka_headers, new_correlation_id
from hub_common.transactions import COLUMNS, TxRow

OPEN = (TxStatus.PENDING.value, TxStatus.PROCESSING.value)

# Rows locked for a transition, with the transaction's `now()` (see the module docstring).
LOCK_BY_ID = f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE id = $1 FOR UPDATE"
LOCK_BY_IDS = f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"
LOCK_BY_REF = f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE ref_id = $1 FOR UPDATE"
LOCK_BY_REFS = (
    f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE ref_id = ANY($1::text[]) ORDER BY id FOR UPDATE"
)


@dataclass(frozen=True)
class Finish:
    """A final outcome: end the transaction without (another) operator call."""

    status: TxStatus
    reason: str
    error_code: ErrorCode | None = None
    balance_cents: int | None = None
    operator_transaction_id: str | None = None
    # Record a tombstone for `original_ref_id`: a later BET with that refId is rejected.
    tombstone: bool = False


@dataclass(frozen=True)
class Locked:
    row: TxRow
    now: datetime


@dataclass(frozen=True)
class _Audit:
    entity_id: str
    action: str
    before: str | None
    after: str | None
    reason: str | None


@dataclass(frozen=True)
class _Event:
    event_id: uuid.UUID
    key: str
    value: bytes
    headers: str


def snapshot(tx: TxRow) -> dict[str, Any]:
    """What an audit row records of a transaction before and after a change."""
    return {
        "status": tx.status.value,
        "reason": tx.reason,
        "errorCode": tx.error_code,
        "balanceCents": tx.balance_cents,
        "operatorTransactionId": tx.operator_transaction_id,
        "attempts": tx.attempts,
    }


async def lock(conn: db.Connection, *, ref_id: str) -> Locked | None:
    """The row of `ref_id`, locked by the caller's database transaction; None when there is none."""
    record = await conn.fetchrow(LOCK_BY_REF, ref_id)
    return Locked(TxRow.from_record(record), record["tx_now"]) if record is not None else None


async def insert_from_command(
    conn: db.Connection,
    cmd: TransactionCommand,
    correlation_id: str,
    *,
    key_ttl: timedelta,
    actor: str,
    reason: str = "row missing at the ledger: inserted from the command",
) -> asyncpg.Record | None:
    """The command's row (PENDING) with its key and audit row, when the gateway's commit was lost after the
    command was produced; None when a concurrent insert won (the caller reads that row)."""
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
        orjson.dumps(cmd.metadata, default=str).decode(),
        cmd.request_hash,
        correlation_id,
        cmd.admitted_at,
    )
    if record is None:
        return None
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
            cmd.admitted_at + key_ttl,
        )
    await audit.record(
        conn,
        audit.AuditEntry(
            "transaction",
            str(tx.id),
            "created",
            actor,
            None,
            snapshot(tx),
            reason,
        ),
    )
    return record


async def start_many(conn: db.Connection, rows: Sequence[TxRow], now: datetime, *, actor: str) -> list[TxRow]:
    """PENDING -> PROCESSING (locked rows), with their audit rows and events, in one statement.

    The first POST is counted here, in the same commit (one round trip less than counting it on its own).
    """
    if not rows:
        return []
    started = [replace(tx, status=TxStatus.PROCESSING, attempts=tx.attempts + 1, updated_at=now) for tx in rows]
    audits = [_audit(tx, new, "processing", "sent to the operator") for tx, new in zip(rows, started, strict=True)]
    events = [_event(new, None) for new in started]
    await conn.execute(
        f"""WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::bytea[],
                                     $7::text[])
                    WITH ORDINALITY AS i(id, before, after, event_id, key, value, headers, ord)),
            moved AS (UPDATE transactions t SET status = 'PROCESSING', attempts = t.attempts + 1, updated_at = now()
                      FROM input i WHERE t.id = i.id RETURNING t.id),
            audit AS ({audit.INSERT}
                      SELECT 'transaction', i.id::text, 'processing', $8::text, i.before::jsonb, i.after::jsonb,
                             'sent to the operator'
                      FROM input i JOIN moved USING (id))
           INSERT INTO event_outbox (event_id, topic, key, value, headers)
           SELECT i.event_id, $9::text, i.key, i.value, i.headers::jsonb FROM input i JOIN moved USING (id)
           ORDER BY i.ord""",
        [tx.id for tx in started],
        [a.before for a in audits],
        [a.after for a in audits],
        [e.event_id for e in events],
        [e.key for e in events],
        [e.value for e in events],
        [e.headers for e in events],
        actor,
        TRANSACTIONS,
    )
    return started


async def finish_many(
    conn: db.Connection,
    items: Sequence[tuple[TxRow, Finish]],
    now: datetime,
    *,
    actor: str,
    action: str | None = None,
) -> dict[uuid.UUID, TxRow | None]:
    """Final transitions of locked rows read at `now`; a row that was already final maps to None.

    One statement: the rows, their idempotency keys, refund tombstones, audit rows (action: `action`, or the
    new status in lower case) and events.
    """
    result: dict[uuid.UUID, TxRow | None] = {tx.id: None for tx, _ in items}
    done: list[tuple[TxRow, Finish, TxRow]] = []
    for tx, outcome in items:
        if tx.status.value not in OPEN:
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
    audits = [_audit(tx, new, action or outcome.status.value.lower(), outcome.reason) for tx, outcome, new in done]
    events = [_event(new, outcome.error_code) for _, outcome, new in done]
    finished = await conn.fetch(
        f"""WITH input AS (
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
            audit AS ({audit.INSERT}
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
        [a.action for a in audits],
        [a.before for a in audits],
        [a.after for a in audits],
        [e.event_id for e in events],
        [e.key for e in events],
        [e.value for e in events],
        [e.headers for e in events],
        list(OPEN),
        actor,
        TRANSACTIONS,
    )
    updated = {r["id"] for r in finished}
    for _, _, new in done:
        if new.id in updated:
            result[new.id] = new
    return result


async def reopen(conn: db.Connection, tx: TxRow, *, actor: str, action: str, reason: str) -> TxRow:
    """FAILED -> PENDING (locked row) with a fresh deadline and no attempts, audited; the key goes back to
    PROCESSING. No event: the outcome clients heard stands until the transaction finishes again."""
    reopened = replace(tx, status=TxStatus.PENDING, reason=reason, error_code=None, completed_at=None, attempts=0)
    await conn.execute(
        """UPDATE transactions SET status = 'PENDING', reason = $2, error_code = NULL, completed_at = NULL,
               attempts = 0, replayed_at = now(), updated_at = now()
           WHERE id = $1""",
        tx.id,
        reason,
    )
    await conn.execute(
        "UPDATE idempotency_keys SET status = 'PROCESSING', updated_at = now() WHERE transaction_id = $1", tx.id
    )
    await audit.record(
        conn, audit.AuditEntry("transaction", str(tx.id), action, actor, snapshot(tx), snapshot(reopened), reason)
    )
    return reopened


async def compensate(conn: db.Connection, tx_id: uuid.UUID, request: dict[str, Any]) -> None:
    """Queue the compensating cancel of a FAILED bet (the ledger's compensation job sends it until the operator
    confirms it); nothing when it is queued already."""
    await conn.execute(
        """INSERT INTO ledger_compensations (transaction_id, operator_transaction_id, request)
           VALUES ($1, $2, $3::jsonb) ON CONFLICT DO NOTHING""",
        tx_id,
        request["transactionId"],
        audit.to_json(request),
    )


def _audit(before: TxRow, after: TxRow, action: str, reason: str | None) -> _Audit:
    return _Audit(str(after.id), action, audit.to_json(snapshot(before)), audit.to_json(snapshot(after)), reason)


def _event(tx: TxRow, error_code: ErrorCode | None) -> _Event:
    event = TransactionEvent(client_id=tx.client_id, error_code=error_code, transaction=tx.resource())
    envelope = wrap(event, correlation_id=tx.correlation_id or new_correlation_id())
    headers = [[k, v.decode(errors="replace")] for k, v in kafka_headers(envelope.correlation_id)]
    return _Event(uuid.UUID(envelope.event_id), tx.ref_id, envelope.encode(), orjson.dumps(headers).decode())
