"""The transaction rules of contract section 2 as pure functions: what to do with one transaction, given
what the ledger already knows about its bet and its round. No I/O here: `store.load_context` gathers the
facts, `processor` acts on the decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from hub_common.schemas import ErrorCode, Transaction, TxStatus, TxType


@dataclass(frozen=True)
class TxRow:
    """One `transactions` row."""

    id: UUID
    client_id: str
    ref_id: str
    type: TxType
    player_id: str
    amount_cents: int
    currency: str
    round_id: str | None
    game_id: str | None
    original_ref_id: str | None
    status: TxStatus
    reason: str | None
    error_code: str | None
    balance_cents: int | None
    operator_transaction_id: str | None
    correlation_id: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_record(cls, r: Any) -> TxRow:
        return cls(
            id=r["id"],
            client_id=r["client_id"],
            ref_id=r["ref_id"],
            type=TxType(r["type"]),
            player_id=r["player_id"],
            amount_cents=r["amount_cents"],
            currency=r["currency"],
            round_id=r["round_id"],
            game_id=r["game_id"],
            original_ref_id=r["original_ref_id"],
            status=TxStatus(r["status"]),
            reason=r["reason"],
            error_code=r["error_code"],
            balance_cents=r["balance_cents"],
            operator_transaction_id=r["operator_transaction_id"],
            correlation_id=r["correlation_id"],
            attempts=r["attempts"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            completed_at=r["completed_at"],
        )

    def resource(self) -> Transaction:
        return Transaction(
            transaction_id=str(self.id),
            ref_id=self.ref_id,
            type=self.type,
            player_id=self.player_id,
            amount_cents=self.amount_cents,
            currency=self.currency,
            round_id=self.round_id,
            game_id=self.game_id,
            original_ref_id=self.original_ref_id,
            status=self.status,
            reason=self.reason,
            balance_cents=self.balance_cents,
            operator_transaction_id=self.operator_transaction_id,
            created_at=self.created_at,
            updated_at=self.updated_at,
            completed_at=self.completed_at,
        )


@dataclass(frozen=True)
class RuleContext:
    """Facts about the transaction's bet and round, read in the same database transaction as the decision."""

    # BET: a REFUND of this refId arrived before the bet (tombstone).
    tombstoned: bool = False
    # REFUND: the transaction named by originalRefId, if the Hub has it.
    original: TxRow | None = None
    # REFUND: an earlier, final REFUND of the same bet (a second refund replays it).
    earlier_refund: TxRow | None = None
    # REFUND: a COMPLETED WIN on the bet's round (or referring to the bet).
    bet_settled: bool = False
    # WIN: the bet of its round (or the bet it refers to) was refunded or cancelled.
    bet_refunded: bool = False


@dataclass(frozen=True)
class CallOperator:
    """Send the transaction to the operator (transactionId = refId)."""

    original_transaction_id: str | None = None
    # Set by the store when the step that made the row PROCESSING also counted the first POST in `attempts`.
    attempt_noted: bool = False


@dataclass(frozen=True)
class Finish:
    """End the transaction without (another) operator call."""

    status: TxStatus
    reason: str
    error_code: ErrorCode | None = None
    balance_cents: int | None = None
    operator_transaction_id: str | None = None
    # Record a tombstone for `original_ref_id`: a later BET with that refId is rejected.
    tombstone: bool = False


Decision = CallOperator | Finish


def reject(code: ErrorCode, reason: str) -> Finish:
    return Finish(TxStatus.REJECTED, reason, error_code=code)


def decide(tx: TxRow, ctx: RuleContext) -> Decision:
    if tx.type is TxType.BET:
        if ctx.tombstoned:
            return reject(ErrorCode.BET_ALREADY_REFUNDED, "the bet was refunded before it arrived")
        return CallOperator()
    if tx.type is TxType.WIN:
        if ctx.bet_refunded:
            return reject(ErrorCode.BET_ALREADY_REFUNDED, "the round's bet was refunded")
        return CallOperator(original_transaction_id=tx.original_ref_id)
    return _decide_refund(tx, ctx)


def _decide_refund(tx: TxRow, ctx: RuleContext) -> Decision:
    if ctx.earlier_refund is not None:
        first = ctx.earlier_refund
        code = ErrorCode(first.error_code) if first.error_code else None
        return Finish(
            first.status,
            f"replay of refund {first.ref_id}",
            error_code=code,
            balance_cents=first.balance_cents,
            operator_transaction_id=first.operator_transaction_id,
        )
    bet = ctx.original
    if bet is None:
        return Finish(TxStatus.COMPLETED, "refund of an unknown bet: no balance effect", tombstone=True)
    if bet.type is not TxType.BET or bet.player_id != tx.player_id:
        return reject(ErrorCode.BET_NOT_FOUND, "originalRefId does not name a bet of this player")
    if tx.amount_cents != bet.amount_cents:
        return reject(ErrorCode.AMOUNT_MISMATCH, f"refund amount must equal the bet's ({bet.amount_cents})")
    if bet.status in (TxStatus.REJECTED, TxStatus.FAILED):
        # A rejected bet never moved money; a failed one was already cancelled by the ledger.
        return Finish(TxStatus.COMPLETED, f"bet was {bet.status.value.lower()}: no balance effect")
    if ctx.bet_settled:
        return reject(ErrorCode.BET_ALREADY_SETTLED, "the bet's round already has a win")
    return CallOperator(original_transaction_id=bet.ref_id)
