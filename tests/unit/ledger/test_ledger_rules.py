"""The refund/win/bet rules of contract section 2, as pure decisions."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime

from hub_common.schemas import ErrorCode, TxStatus, TxType
from hub_common.transactions import TxRow
from hub_common.transitions import Finish
from hub_ledger.rules import CallOperator, RuleContext, decide

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def row(ref_id: str, tx_type: TxType, *, amount: int = 250, status: TxStatus = TxStatus.PENDING, **kw: object) -> TxRow:
    base = TxRow(
        id=uuid.uuid4(),
        client_id="rgs-demo",
        ref_id=ref_id,
        type=tx_type,
        player_id="p-1",
        amount_cents=amount,
        currency="EUR",
        round_id="r-1",
        game_id="g-1",
        original_ref_id=None,
        status=status,
        reason=None,
        error_code=None,
        balance_cents=None,
        operator_transaction_id=None,
        correlation_id="c-1",
        attempts=0,
        created_at=NOW,
        updated_at=NOW,
        completed_at=None,
        replayed_at=None,
        operator_id=f"rgs-demo:{ref_id}",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


BET = row("bet-1", TxType.BET, status=TxStatus.COMPLETED)
REFUND = row("refund-1", TxType.REFUND, original_ref_id="bet-1")
WIN = row("win-1", TxType.WIN, amount=500)


def test_bet_goes_to_the_operator() -> None:
    assert decide(row("bet-1", TxType.BET), RuleContext()) == CallOperator()


def test_bet_after_a_refund_of_it_is_rejected_already_refunded() -> None:
    decision = decide(row("bet-1", TxType.BET), RuleContext(tombstoned=True))
    assert isinstance(decision, Finish)
    assert (decision.status, decision.error_code) == (TxStatus.REJECTED, ErrorCode.BET_ALREADY_REFUNDED)


def test_bet_past_its_useful_life_is_rejected_expired_without_an_operator_call() -> None:
    decision = decide(row("bet-1", TxType.BET), RuleContext(expired=True))
    assert isinstance(decision, Finish)
    assert (decision.status, decision.error_code) == (TxStatus.REJECTED, ErrorCode.BET_EXPIRED)
    # A tombstone is the older fact: the bet was refunded before it arrived.
    tombstoned = decide(row("bet-1", TxType.BET), RuleContext(expired=True, tombstoned=True))
    assert isinstance(tombstoned, Finish) and tombstoned.error_code is ErrorCode.BET_ALREADY_REFUNDED


def test_refund_of_unknown_bet_completes_without_balance_effect_and_leaves_a_tombstone() -> None:
    decision = decide(REFUND, RuleContext(original=None))
    assert isinstance(decision, Finish)
    assert decision.status is TxStatus.COMPLETED
    assert decision.balance_cents is None
    assert decision.tombstone is True


def test_refund_of_a_known_bet_goes_to_the_operator_with_the_bets_operator_id() -> None:
    assert decide(REFUND, RuleContext(original=BET)) == CallOperator(original_transaction_id="rgs-demo:bet-1")


def test_refund_refers_to_the_id_the_bet_was_sent_under() -> None:
    # A bet admitted before refIds were per client was sent under its refId: its refund must name that id.
    legacy = replace(BET, operator_id="bet-1")
    assert decide(REFUND, RuleContext(original=legacy)) == CallOperator(original_transaction_id="bet-1")


def test_refund_amount_must_equal_the_bets() -> None:
    decision = decide(replace(REFUND, amount_cents=249), RuleContext(original=BET))
    assert isinstance(decision, Finish)
    assert (decision.status, decision.error_code) == (TxStatus.REJECTED, ErrorCode.AMOUNT_MISMATCH)


def test_refund_after_a_win_on_the_round_is_rejected_already_settled() -> None:
    decision = decide(REFUND, RuleContext(original=BET, bet_settled=True))
    assert isinstance(decision, Finish)
    assert (decision.status, decision.error_code) == (TxStatus.REJECTED, ErrorCode.BET_ALREADY_SETTLED)


def test_second_refund_replays_the_first() -> None:
    first = replace(
        REFUND,
        ref_id="refund-0",
        status=TxStatus.COMPLETED,
        balance_cents=1000,
        operator_transaction_id="op-9",
    )
    decision = decide(REFUND, RuleContext(original=BET, earlier_refund=first, bet_settled=True))
    assert isinstance(decision, Finish)
    assert (decision.status, decision.balance_cents, decision.operator_transaction_id) == (
        TxStatus.COMPLETED,
        1000,
        "op-9",
    )
    assert decision.error_code is None


def test_second_refund_replays_a_rejected_first_with_its_code() -> None:
    first = replace(REFUND, ref_id="refund-0", status=TxStatus.REJECTED, error_code="AMOUNT_MISMATCH")
    decision = decide(REFUND, RuleContext(original=BET, earlier_refund=first))
    assert isinstance(decision, Finish)
    assert (decision.status, decision.error_code) == (TxStatus.REJECTED, ErrorCode.AMOUNT_MISMATCH)


def test_refund_of_a_rejected_bet_has_no_balance_effect() -> None:
    decision = decide(REFUND, RuleContext(original=replace(BET, status=TxStatus.REJECTED)))
    assert isinstance(decision, Finish)
    assert decision.status is TxStatus.COMPLETED
    assert decision.tombstone is False


def test_refund_naming_a_win_or_another_players_or_clients_bet_is_bet_not_found() -> None:
    # The rule queries never load another client's bet; the rule refuses one all the same.
    for original in (replace(BET, type=TxType.WIN), replace(BET, player_id="p-2"), replace(BET, client_id="rgs-2")):
        decision = decide(REFUND, RuleContext(original=original))
        assert isinstance(decision, Finish)
        assert decision.error_code is ErrorCode.BET_NOT_FOUND


def test_win_whose_bet_was_refunded_is_rejected_already_refunded() -> None:
    decision = decide(WIN, RuleContext(bet_refunded=True))
    assert isinstance(decision, Finish)
    assert (decision.status, decision.error_code) == (TxStatus.REJECTED, ErrorCode.BET_ALREADY_REFUNDED)


def test_win_goes_to_the_operator() -> None:
    assert decide(WIN, RuleContext()) == CallOperator()


def test_win_names_its_bet_by_the_bets_operator_id() -> None:
    win = replace(WIN, original_ref_id="bet-1")
    decision = decide(win, RuleContext(original_operator_id="rgs-demo:bet-1"))
    assert decision == CallOperator(original_transaction_id="rgs-demo:bet-1")
