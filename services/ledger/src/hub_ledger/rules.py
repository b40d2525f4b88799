"""The transaction rules of contract section 2 as pure functions: what to do with one transaction, given
what the ledger already knows about its bet and its round. No I/O here: `rule_queries` gathers the facts,
`processor` acts on the decision, `hub_common.transitions` records it."""

from __future__ import annotations

from dataclasses import dataclass

from hub_common.schemas import ErrorCode, TxStatus, TxType
from hub_common.transactions import TxRow
from hub_common.transitions import Finish


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
    # WIN with an originalRefId: the operator id of that bet (hub_common.operator.ids).
    original_operator_id: str | None = None
    # BET: its useful life (`send_by`) ended before the ledger got to it.
    expired: bool = False


@dataclass(frozen=True)
class CallOperator:
    """Send the transaction to the operator under its stored operator id."""

    # The operator id of the bet a WIN/REFUND refers to (`originalTransactionId`).
    original_transaction_id: str | None = None
    # Set by the store when the step that made the row PROCESSING also counted the first POST in `attempts`.
    attempt_noted: bool = False
    # Set by the store for a transaction marked possibly sent after a database restore (`possibly_sent_at`): ask
    # the operator (GET) first; its record finishes the transaction, and only without one do the rules decide.
    resolve_first: bool = False


Decision = CallOperator | Finish


def reject(code: ErrorCode, reason: str) -> Finish:
    return Finish(TxStatus.REJECTED, reason, error_code=code)


def expire() -> Finish:
    """A BET whose useful life ended before it was sent: never sent late, nothing debited."""
    return reject(ErrorCode.BET_EXPIRED, "not sent to the operator within its useful life; nothing was debited")


def decide(tx: TxRow, ctx: RuleContext) -> Decision:
    if tx.type is TxType.BET:
        if ctx.tombstoned:
            return reject(ErrorCode.BET_ALREADY_REFUNDED, "the bet was refunded before it arrived")
        if ctx.expired:
            return expire()
        return CallOperator()
    if tx.type is TxType.WIN:
        if ctx.bet_refunded:
            return reject(ErrorCode.BET_ALREADY_REFUNDED, "the round's bet was refunded")
        return CallOperator(original_transaction_id=ctx.original_operator_id)
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
    if bet.type is not TxType.BET or bet.player_id != tx.player_id or bet.client_id != tx.client_id:
        return reject(ErrorCode.BET_NOT_FOUND, "originalRefId does not name a bet of this player")
    if tx.amount_cents != bet.amount_cents:
        return reject(ErrorCode.AMOUNT_MISMATCH, f"refund amount must equal the bet's ({bet.amount_cents})")
    if bet.status in (TxStatus.REJECTED, TxStatus.FAILED):
        # A rejected bet never moved money; a failed one was already cancelled by the ledger.
        return Finish(TxStatus.COMPLETED, f"bet was {bet.status.value.lower()}: no balance effect")
    if ctx.bet_settled:
        return reject(ErrorCode.BET_ALREADY_SETTLED, "the bet's round already has a win")
    return CallOperator(original_transaction_id=bet.operator_id)
