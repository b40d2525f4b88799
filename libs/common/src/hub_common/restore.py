"""A transaction written back as the Hub's own journal says it ended, after PostgreSQL was restored from a backup.

Every outcome an RGS heard was first published on hub.transactions (the gateway's answer and the webhook both
come from that event), and every admitted command is on hub.commands. A database restored to an earlier time
lacks what happened since. `restore` writes one transaction back to its final state from its final event: the
row (re-created from its command when the backup predates the admission), its idempotency key, a refund's
tombstone, the compensating cancel of a FAILED bet (queued again: the ledger sends it until the operator
confirms, and the operator applies an id once) and an audit row `recovery.restore`. No operator call (it did
its work then) and no new event (clients heard this one): nothing is applied or announced twice.

A transaction with no outcome yet (admitted, open in the journal or in the restored database) is not finished
here but marked possibly sent (`mark_possibly_sent`): the operator may have applied it after the backup, while the
restored row says it was never sent (PENDING with no attempt, or no row at all, which is re-created here from its
command). The ledger then asks the operator before any decision that assumes it was never sent (a BET's useful
life, the rules that finish without the operator): the operator's record finishes it; no record clears the mark
(`hub_common.transitions.not_at_operator`) and the ordinary rules decide.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from enum import StrEnum

from hub_common import audit, db
from hub_common.operator.requests import cancel_request
from hub_common.schemas import ErrorCode, TransactionCommand, TransactionEvent, TxStatus, TxType
from hub_common.transactions import COLUMNS, TxRow
from hub_common.transitions import LOCK_BY_ID, OPEN, compensate, insert_from_command, snapshot

ACTION = "recovery.restore"
MARK_ACTION = "recovery.possibly-sent"
# Rejections the operator made (so it was called); the others are the ledger's own rules.
_OPERATOR_REJECTIONS = frozenset(
    {
        ErrorCode.PLAYER_NOT_FOUND,
        ErrorCode.INSUFFICIENT_FUNDS,
        ErrorCode.CURRENCY_MISMATCH,
        ErrorCode.DUPLICATE_REF_ID,
        ErrorCode.INVALID_REQUEST,
    }
)


class Result(StrEnum):
    INSERTED = "inserted"  # the row was missing: re-created from its command, then finished
    FINISHED = "finished"  # the row was open (PENDING/PROCESSING): finished as the journal says
    ALREADY = "already"  # the row already has the journal's final status
    MARKED = "marked"  # open (or re-created from its command): marked possibly sent, the ledger asks first
    CONFLICT = "conflict"  # the row or the journal disagree in a way only a person can settle


@dataclass(frozen=True)
class Restored:
    result: Result
    detail: str
    row: TxRow | None = None


def _operator_called(event: TransactionEvent, before: TxRow) -> bool:
    """Whether the operator saw the transaction (`attempts > 0` on a final row means so to the reconciler). The
    attempt a possibly-sent mark counts is a doubt, not a call: the journal's event tells."""
    tx = event.transaction
    if before.attempts > 0 and before.possibly_sent_at is None:
        return True
    if tx.status is TxStatus.COMPLETED:
        return tx.operator_transaction_id is not None or tx.balance_cents is not None
    return tx.status is TxStatus.REJECTED and event.error_code in _OPERATOR_REJECTIONS


async def restore(
    conn: db.Connection,
    event: TransactionEvent,
    command: TransactionCommand | None,
    *,
    correlation_id: str,
    key_ttl: timedelta,
    actor: str,
    reason: str,
) -> Restored:
    """Write `event`'s final state back (call inside the caller's database transaction)."""
    tx = event.transaction
    if not tx.status.is_final:
        return Restored(Result.CONFLICT, f"journal event is {tx.status}, not final")
    tx_id = uuid.UUID(tx.transaction_id)
    found = await _row(conn, tx_id, tx.ref_id, command, correlation_id, key_ttl=key_ttl, actor=actor, reason=reason)
    if isinstance(found, Restored):
        return found
    before, inserted = found
    if before.status.is_final:
        if before.status is tx.status:
            return Restored(Result.ALREADY, f"already {tx.status}", before)
        return Restored(Result.CONFLICT, f"database says {before.status}, the journal {tx.status}", before)
    attempts = 1 if _operator_called(event, before) else 0
    if before.possibly_sent_at is None:
        attempts = max(before.attempts, attempts)
    error_code = event.error_code.value if event.error_code else None
    after = await conn.fetchrow(
        """UPDATE transactions SET status = $2, reason = $3, error_code = $4, balance_cents = $5,
               operator_transaction_id = $6, attempts = $7, completed_at = coalesce($8, now()), updated_at = now(),
               lease_expires_at = NULL, possibly_sent_at = NULL
           WHERE id = $1 AND status = ANY($9::text[])
           RETURNING completed_at, updated_at""",
        tx_id,
        tx.status.value,
        tx.reason,
        error_code,
        tx.balance_cents,
        tx.operator_transaction_id,
        attempts,
        tx.completed_at,
        list(OPEN),
    )
    assert after is not None  # the row is locked and open
    await conn.execute(
        "UPDATE idempotency_keys SET status = 'COMPLETED', updated_at = now() WHERE transaction_id = $1", tx_id
    )
    row = replace(
        before,
        status=tx.status,
        reason=tx.reason,
        error_code=error_code,
        balance_cents=tx.balance_cents,
        operator_transaction_id=tx.operator_transaction_id,
        attempts=attempts,
        possibly_sent_at=None,
        completed_at=after["completed_at"],
        updated_at=after["updated_at"],
    )
    await _side_effects(conn, row)
    await audit.record(
        conn,
        audit.AuditEntry(
            "transaction", str(tx_id), ACTION, actor, None if inserted else snapshot(before), snapshot(row), reason
        ),
    )
    return Restored(Result.INSERTED if inserted else Result.FINISHED, f"{tx.status} from the journal", row)


async def mark_possibly_sent(
    conn: db.Connection,
    transaction_id: str,
    ref_id: str,
    command: TransactionCommand | None,
    *,
    correlation_id: str,
    key_ttl: timedelta,
    actor: str,
    reason: str,
) -> Restored:
    """Mark an open transaction possibly sent (call inside the caller's database transaction): `possibly_sent_at`
    now, at least one attempt counted (the operator may hold a record of it: what `attempts > 0` tells the
    reconciler), and its lease ended with the token raised, so a holder from before the restore is fenced and
    the ledger takes it at once. A missing row is re-created from its command first."""
    tx_id = uuid.UUID(transaction_id)
    found = await _row(conn, tx_id, ref_id, command, correlation_id, key_ttl=key_ttl, actor=actor, reason=reason)
    if isinstance(found, Restored):
        return found
    before, inserted = found
    if before.status.is_final:
        return Restored(Result.ALREADY, f"already {before.status}", before)
    record = await conn.fetchrow(
        f"""UPDATE transactions SET possibly_sent_at = now(), attempts = greatest(attempts, 1),
                lease_token = lease_token + 1, lease_expires_at = NULL, updated_at = now()
            WHERE id = $1 RETURNING {COLUMNS}""",  # noqa: S608 - COLUMNS is a constant column list
        tx_id,
    )
    assert record is not None  # locked above, rows are never deleted
    row = TxRow.from_record(record)
    await audit.record(
        conn,
        audit.AuditEntry("transaction", str(tx_id), MARK_ACTION, actor, snapshot(before), snapshot(row), reason),
    )
    where = "re-created from hub.commands" if inserted else f"{before.status} in the restored database"
    return Restored(Result.MARKED, f"{where}: the ledger asks the operator before deciding", row)


async def _row(
    conn: db.Connection,
    tx_id: uuid.UUID,
    ref_id: str,
    command: TransactionCommand | None,
    correlation_id: str,
    *,
    key_ttl: timedelta,
    actor: str,
    reason: str,
) -> tuple[TxRow, bool] | Restored:
    """The transaction's row, locked, and whether it was re-created here from its command (the restored database
    lacked it); a `Restored` conflict when it can be neither read nor re-created."""
    record = await conn.fetchrow(LOCK_BY_ID, tx_id)
    if record is not None:
        return TxRow.from_record(record), False
    if command is None:
        return Restored(Result.CONFLICT, "no row, and its command is not in the journal read: widen --margin")
    note = f"{reason}: admission re-created from hub.commands"
    if await insert_from_command(conn, command, correlation_id, key_ttl=key_ttl, actor=actor, reason=note) is None:
        return Restored(Result.CONFLICT, f"refId {ref_id} belongs to another transaction in the database")
    record = await conn.fetchrow(LOCK_BY_ID, tx_id)
    assert record is not None  # inserted just now by this database transaction
    return TxRow.from_record(record), True


async def _side_effects(conn: db.Connection, row: TxRow) -> None:
    """What the ledger wrote beside such a final row: a tombstone, or a bet's compensating cancel."""
    if row.type is TxType.BET and row.status is TxStatus.FAILED:
        await compensate(conn, row.id, cancel_request(row).model_dump(mode="json", by_alias=True))
    elif (
        row.type is TxType.REFUND
        and row.status is TxStatus.COMPLETED
        and row.attempts == 0
        and row.original_ref_id is not None
        and not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM transactions WHERE ref_id = $1 AND client_id = $2)",
            row.original_ref_id,
            row.client_id,
        )
    ):
        # A refund of a bet the Hub never saw: a later BET of the client with that refId is rejected (the ledger's
        # rule).
        await conn.execute(
            """INSERT INTO refund_tombstones (client_id, ref_id, refund_transaction_id) VALUES ($1, $2, $3)
               ON CONFLICT DO NOTHING""",
            row.client_id,
            row.original_ref_id,
            row.id,
        )
