"""Every change of a transaction's status after admission, with its audit row and its `hub.transactions` event.

The ledger and hubctl both change transactions through these functions, so a transition writes the same rows
whoever makes it: the row, its idempotency key, the audit row (the 6-field `snapshot` before and after) and,
for a status clients must hear of, an `event_outbox` row that the ledger's relay publishes. Each runs on the
caller's connection inside its database transaction, on rows the caller locked (`lock`, or the ledger's own
batched locking), and read at `now`: the transaction's `now()`, the value every `= now()` here writes, so the
new row (and the event describing it) is known before the write and a transition is one statement. A final
transition (`finish_many`) takes its locks itself and writes `now` as given, so the ledger, holding the lease,
runs it alone after an unlocked read.

A final transition is guarded by the status it leaves (`WHERE status IN (open)`): two processes racing on one
transaction (a rebalance, the sweeper, an SRE) finish it once; the loser sees None.

Ownership (the lease): whoever calls the operator for an open transaction holds it. Taking it (`start_many`,
`take_over_many`) is allowed only while nobody holds a live lease (`may_take`: the row's `lease_expires_at` is not
ahead of the database clock) and raises `lease_token` by one; the holder renews it (`renew`) while it waits and
retries, and every final write names the token its writer holds (`finish_many`: checked in the UPDATE's WHERE), so
a holder whose lease expired and was taken over is fenced: its late result changes nothing. The ledger and
`hubctl tx resolve|replay` obey this one rule. A holder starts an operator call only with at least the call's
timeout left on its lease (the ledger's processor), so once someone else may take a transaction over, every call
the old holder made has returned.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
from opentelemetry.context import Context

from hub_common import audit, db
from hub_common.envelope import wrap
from hub_common.kafka import TRANSACTIONS
from hub_common.operator.ids import command_operator_id
from hub_common.operator.requests import cancel_request
from hub_common.schemas import ErrorCode, TransactionCommand, TransactionEvent, TxStatus, TxType
from hub_common.telemetry import kafka_headers, new_correlation_id
from hub_common.transactions import COLUMNS, TxRow

OPEN = (TxStatus.PENDING.value, TxStatus.PROCESSING.value)

# PostgreSQL NOTIFY channel the ledger's outbox relay listens on: events were committed to `event_outbox`.
OUTBOX_CHANNEL = "hub_event_outbox"

# Rows locked for a transition, with the transaction's `now()` (see the module docstring).
LOCK_BY_ID = f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE id = $1 FOR UPDATE"  # noqa: S608 - COLUMNS is a constant column list
LOCK_BY_IDS = f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE"  # noqa: S608 - COLUMNS is a constant column list
# The same rows unlocked, for a final transition that is one statement of its own (`finish_many`).
READ_BY_IDS = f"SELECT {COLUMNS}, now() AS tx_now FROM transactions WHERE id = ANY($1::uuid[])"  # noqa: S608 - COLUMNS is a constant column list


@dataclass(frozen=True)
class Finish:
    """A final outcome: end the transaction without (another) operator call."""

    status: TxStatus
    reason: str
    error_code: ErrorCode | None = None
    balance_cents: int | None = None
    operator_transaction_id: str | None = None
    # Record a tombstone for `original_ref_id`: a later BET of the same client with that refId is rejected.
    tombstone: bool = False
    # A FAILED BET: queue its compensating REFUND (`ledger_compensations`, sent by the ledger's compensator until
    # the operator confirms it) in the same statement, whoever fails it.
    compensate: bool = False


@dataclass(frozen=True)
class Locked:
    row: TxRow
    now: datetime


def lease_live(tx: TxRow, now: datetime) -> bool:
    """Someone holds the transaction: its lease has not expired at `now` (the database clock)."""
    return tx.lease_expires_at is not None and tx.lease_expires_at > now


def may_take(tx: TxRow, now: datetime) -> bool:
    """An open transaction nobody holds: it may be taken (the old holder, if any, is then fenced)."""
    return tx.status.value in OPEN and not lease_live(tx, now)


def describe_lease(tx: TxRow) -> str:
    return f"held by {tx.lease_owner or 'unknown'} (lease {tx.lease_token}) until {tx.lease_expires_at}"


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


async def lock(conn: db.Connection, tx_id: uuid.UUID) -> Locked | None:
    """The row `tx_id`, locked by the caller's database transaction; None when there is none."""
    record = await conn.fetchrow(LOCK_BY_ID, tx_id)
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
    command was produced (or a restored database lacks it), under the operator id the command names (the one the
    operator saw); None when the id, the client's refId or the operator id is taken (a concurrent insert of the
    same command: the caller reads that row; or another transaction: the command is not the row's)."""
    record = await conn.fetchrow(
        f"""INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, round_id,
                game_id, original_ref_id, round_closed, metadata, request_hash, status, correlation_id, created_at,
                operator_id, send_by)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, 'PENDING', $14, $15, $16, $17)
            ON CONFLICT DO NOTHING RETURNING {COLUMNS}""",  # noqa: S608 - COLUMNS is a constant column list
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
        command_operator_id(cmd.operator_id, cmd.ref_id),
        cmd.send_by,
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


async def start_many(
    conn: db.Connection,
    rows: Sequence[TxRow],
    now: datetime,
    *,
    actor: str,
    lease_owner: str,
    lease_s: float,
    traces: Mapping[uuid.UUID, Context] | None = None,
) -> list[TxRow]:
    """PENDING -> PROCESSING (locked rows nobody holds: `may_take`), with their audit rows and events, in one
    statement; the caller takes their leases (`lease_owner`, for `lease_s`) in the same statement.

    The first POST is counted here, in the same commit (one round trip less than counting it on its own).
    `traces`: each transaction's trace context for its event (default: the current one), when the rows of many
    callers' traces are written together.
    """
    if not rows:
        return []
    expires = now + timedelta(seconds=lease_s)
    started = [
        replace(
            tx,
            status=TxStatus.PROCESSING,
            attempts=tx.attempts + 1,
            updated_at=now,
            lease_owner=lease_owner,
            lease_token=tx.lease_token + 1,
            lease_expires_at=expires,
        )
        for tx in rows
    ]
    audits = [_audit(tx, new, "processing", "sent to the operator") for tx, new in zip(rows, started, strict=True)]
    events = [_event(new, None, _trace(traces, new.id)) for new in started]
    await conn.execute(
        f"""WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], $6::bytea[],
                                     $7::text[])
                    WITH ORDINALITY AS i(id, before, after, event_id, key, value, headers, ord)),
            moved AS (UPDATE transactions t SET status = 'PROCESSING', attempts = t.attempts + 1, updated_at = now(),
                             lease_owner = $10, lease_token = t.lease_token + 1,
                             lease_expires_at = now() + make_interval(secs => $11)
                      FROM input i WHERE t.id = i.id RETURNING t.id),
            audit AS ({audit.INSERT}
                      SELECT 'transaction', i.id::text, 'processing', $8::text, i.before::jsonb, i.after::jsonb,
                             'sent to the operator'
                      FROM input i JOIN moved USING (id))
           INSERT INTO event_outbox (event_id, topic, key, value, headers)
           SELECT i.event_id, $9::text, i.key, i.value, i.headers::jsonb FROM input i JOIN moved USING (id)
           ORDER BY i.ord""",  # noqa: S608 - audit.INSERT is a constant; values are bind parameters
        [tx.id for tx in started],
        [a.before for a in audits],
        [a.after for a in audits],
        [e.event_id for e in events],
        [e.key for e in events],
        [e.value for e in events],
        [e.headers for e in events],
        actor,
        TRANSACTIONS,
        lease_owner,
        lease_s,
    )
    return started


async def take_over_many(
    conn: db.Connection, rows: Sequence[TxRow], now: datetime, *, lease_owner: str, lease_s: float
) -> list[TxRow]:
    """Take the leases of locked open rows nobody holds (`may_take`), fencing their former holders; the status
    stays. No audit row or event: ownership is not part of a transaction's state (the holder's final transition
    records what it did)."""
    if not rows:
        return []
    await conn.execute(
        """UPDATE transactions SET lease_owner = $2, lease_token = lease_token + 1,
               lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
           WHERE id = ANY($1::uuid[])""",
        [tx.id for tx in rows],
        lease_owner,
        lease_s,
    )
    expires = now + timedelta(seconds=lease_s)
    return [
        replace(tx, lease_owner=lease_owner, lease_token=tx.lease_token + 1, lease_expires_at=expires, updated_at=now)
        for tx in rows
    ]


@dataclass(frozen=True)
class Renewal:
    """Extend the lease `token` of transaction `tx_id`; `count_attempt`: a POST is about to be sent."""

    tx_id: uuid.UUID
    token: int
    count_attempt: bool = False


async def renew_many(
    conn: db.Connection | asyncpg.Pool, renewals: Sequence[Renewal], *, lease_s: float
) -> set[uuid.UUID]:
    """Extend leases (and count POSTs) in one statement; returns the transactions still held. One missing from the
    result is final or was taken over: its holder no longer owns it and must stop. Rows are locked in id order,
    the order every other batch takes them in."""
    if not renewals:
        return set()
    rows = await conn.fetch(
        """WITH i AS (SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::int[]) AS i(id, token, attempts)),
                locked AS (SELECT t.id FROM transactions t JOIN i USING (id)
                           WHERE t.lease_token = i.token AND t.status IN ('PENDING', 'PROCESSING')
                           ORDER BY t.id FOR UPDATE OF t)
           UPDATE transactions t SET lease_expires_at = now() + make_interval(secs => $4), updated_at = now(),
                  attempts = t.attempts + i.attempts
           FROM i WHERE t.id = i.id AND t.id IN (SELECT id FROM locked) RETURNING t.id""",
        [r.tx_id for r in renewals],
        [r.token for r in renewals],
        [1 if r.count_attempt else 0 for r in renewals],
        lease_s,
    )
    return {r["id"] for r in rows}


async def release(conn: db.Connection, tx_id: uuid.UUID, token: int) -> None:
    """End the lease `token` at once (the transaction is handed back to the ledger); the token stays, so a former
    holder remains fenced."""
    await conn.execute(
        "UPDATE transactions SET lease_expires_at = now() WHERE id = $1 AND lease_token = $2", tx_id, token
    )


async def finish_many(
    conn: db.Connection,
    items: Sequence[tuple[TxRow, Finish, int]],
    now: datetime,
    *,
    actor: str,
    action: str | None = None,
    traces: Mapping[uuid.UUID, Context] | None = None,
) -> dict[uuid.UUID, TxRow | None]:
    """Final transitions of rows read at `now`, each by the holder of lease token `token` (a writer that
    took no lease passes the row's token, having checked `may_take`); a row that was already final, or whose
    lease was taken over since (the writer is fenced), maps to None.

    One statement: the rows, their idempotency keys, refund tombstones, compensations, audit rows (action:
    `action`, or the new status in lower case) and events (in `traces`' context of each, as in `start_many`).
    It locks the rows itself (in id order, as every batch does) and checks status and token under the lock, and
    it writes `now` as the completion time, so the rows may also have been read unlocked by a statement of their
    own (`READ_BY_IDS`) and this statement run alone: the holder of a lease is the only writer of its row but for
    the renewals of its own heartbeat, and a takeover only fences it.
    """
    result: dict[uuid.UUID, TxRow | None] = {tx.id: None for tx, _, _ in items}
    done: list[tuple[TxRow, Finish, TxRow]] = []
    tokens: dict[uuid.UUID, int] = {}
    for tx, outcome, token in items:
        if tx.status.value not in OPEN or tx.lease_token != token:
            continue
        tokens[tx.id] = token
        new = replace(
            tx,
            status=outcome.status,
            reason=outcome.reason,
            error_code=outcome.error_code.value if outcome.error_code else None,
            balance_cents=outcome.balance_cents,
            operator_transaction_id=outcome.operator_transaction_id,
            updated_at=now,
            completed_at=now,
            lease_expires_at=None,
        )
        done.append((tx, outcome, new))
    if not done:
        return result
    audits = [_audit(tx, new, action or outcome.status.value.lower(), outcome.reason) for tx, outcome, new in done]
    events = [_event(new, outcome.error_code, _trace(traces, new.id)) for _, outcome, new in done]
    cancels = [cancel_request(tx) if outcome.compensate and tx.type is TxType.BET else None for tx, outcome, _ in done]
    finished = await conn.fetch(
        f"""WITH input AS (
                SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
                                     $7::text[], $8::text[], $9::text[], $10::text[], $11::uuid[], $12::text[],
                                     $13::bytea[], $14::text[], $18::bigint[], $19::text[], $20::text[])
                    WITH ORDINALITY AS i(id, status, reason, error_code, balance_cents, operator_transaction_id,
                                         tombstone, action, before, after, event_id, key, value, headers,
                                         lease_token, cancel_id, cancel_request, ord)),
            locked AS MATERIALIZED (SELECT t.id FROM transactions t JOIN input i USING (id)
                                    ORDER BY t.id FOR UPDATE OF t),
            done AS (UPDATE transactions t SET status = i.status, reason = i.reason, error_code = i.error_code,
                            balance_cents = i.balance_cents, operator_transaction_id = i.operator_transaction_id,
                            completed_at = $21, updated_at = $21, lease_expires_at = NULL
                     FROM input i
                     WHERE t.id = i.id AND t.id IN (SELECT id FROM locked) AND t.status = ANY($15::text[])
                       AND t.lease_token = i.lease_token
                     RETURNING t.id, t.client_id),
            keys AS (UPDATE idempotency_keys k SET status = 'COMPLETED', updated_at = now()
                     WHERE k.transaction_id IN (SELECT id FROM done)),
            tombstone AS (INSERT INTO refund_tombstones (client_id, ref_id, refund_transaction_id)
                          SELECT d.client_id, i.tombstone, i.id FROM input i JOIN done d USING (id)
                          WHERE i.tombstone IS NOT NULL
                          ON CONFLICT DO NOTHING),
            compensation AS (INSERT INTO ledger_compensations (transaction_id, operator_transaction_id, request)
                             SELECT i.id, i.cancel_id, i.cancel_request::jsonb FROM input i JOIN done USING (id)
                             WHERE i.cancel_id IS NOT NULL
                             ON CONFLICT DO NOTHING),
            audit AS ({audit.INSERT}
                      SELECT 'transaction', i.id::text, i.action, $16::text, i.before::jsonb, i.after::jsonb, i.reason
                      FROM input i JOIN done USING (id)),
            event AS (INSERT INTO event_outbox (event_id, topic, key, value, headers)
                      SELECT i.event_id, $17::text, i.key, i.value, i.headers::jsonb FROM input i JOIN done USING (id)
                      ORDER BY i.ord)
           SELECT id FROM done""",  # noqa: S608 - audit.INSERT is a constant; values are bind parameters
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
        [tokens[new.id] for _, _, new in done],
        [c.transaction_id if c else None for c in cancels],
        [audit.to_json(c.model_dump(mode="json", by_alias=True)) if c else None for c in cancels],
        now,
    )
    updated = {r["id"] for r in finished}
    for _, _, new in done:
        if new.id in updated:
            result[new.id] = new
    return result


async def announce_events(conn: db.Connection) -> None:
    """Wake the ledger's outbox relay (any replica's) when the caller's transaction commits: events it wrote are
    published at once instead of at the relay's next poll. Outside a transaction: at once."""
    await conn.execute("SELECT pg_notify($1, '')", OUTBOX_CHANNEL)


async def reopen(conn: db.Connection, tx: TxRow, *, actor: str, action: str, reason: str) -> TxRow:
    """FAILED -> PENDING (locked row) with a fresh deadline and no attempts, audited; the key goes back to
    PROCESSING. No event: the outcome clients heard stands until the transaction finishes again. A BET's useful
    life no longer applies: an SRE's replay is a decision to send it (made once the operator said it has no
    record, so no doubt from a database restore remains either)."""
    reopened = replace(
        tx,
        status=TxStatus.PENDING,
        reason=reason,
        error_code=None,
        completed_at=None,
        attempts=0,
        send_by=None,
        possibly_sent_at=None,
    )
    await conn.execute(
        """UPDATE transactions SET status = 'PENDING', reason = $2, error_code = NULL, completed_at = NULL,
               attempts = 0, replayed_at = now(), send_by = NULL, possibly_sent_at = NULL, updated_at = now()
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


# The ledger found that a transaction marked possibly sent after a database restore never reached the operator.
NOT_AT_OPERATOR = "recovery.not-at-operator"


async def not_at_operator(conn: db.Connection, tx: TxRow, now: datetime, *, actor: str) -> TxRow:
    """An open transaction marked possibly sent (`possibly_sent_at`, set after a database restore) of which the
    operator has no record: back to what an admission nobody sent is (PENDING, no attempt, no mark, nobody holding
    it), audited, so that the ordinary rules decide it next, in the same database transaction (a BET past its
    useful life then expires with nothing debited). The caller holds its lease and has the row locked, read at
    `now`. No event: clients hear the final outcome."""
    cleared = replace(
        tx, status=TxStatus.PENDING, attempts=0, possibly_sent_at=None, lease_expires_at=None, updated_at=now
    )
    await conn.execute(
        """UPDATE transactions SET status = 'PENDING', attempts = 0, possibly_sent_at = NULL, lease_expires_at = NULL,
               updated_at = now()
           WHERE id = $1""",
        tx.id,
    )
    await audit.record(
        conn,
        audit.AuditEntry(
            "transaction",
            str(tx.id),
            NOT_AT_OPERATOR,
            actor,
            snapshot(tx),
            snapshot(cleared),
            "possibly sent before a database restore; the operator has no record of it: decided as never sent",
        ),
    )
    return cleared


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


def _trace(traces: Mapping[uuid.UUID, Context] | None, tx_id: uuid.UUID) -> Context | None:
    return traces.get(tx_id) if traces is not None else None


def _event(tx: TxRow, error_code: ErrorCode | None, context: Context | None = None) -> _Event:
    event = TransactionEvent(client_id=tx.client_id, error_code=error_code, transaction=tx.resource())
    envelope = wrap(event, correlation_id=tx.correlation_id or new_correlation_id())
    headers = [[k, v.decode(errors="replace")] for k, v in kafka_headers(envelope.correlation_id, context=context)]
    return _Event(uuid.UUID(envelope.event_id), tx.ref_id, envelope.encode(), orjson.dumps(headers).decode())
