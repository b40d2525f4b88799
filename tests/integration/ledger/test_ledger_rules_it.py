"""The refund/win rules of contract section 2 end to end (real database, operator and Kafka)."""

from __future__ import annotations

from hub_common.schemas import ErrorCode, TxStatus, TxType
from support.ledger_it import Harness, command, op_id


async def test_refund_of_unknown_bet_completes_then_that_bet_is_rejected(ledger: Harness) -> None:
    refund = command("refund-early", TxType.REFUND, "p-1", 300, original_ref_id="bet-late")
    event = await ledger.settle(refund)
    assert event.transaction.status is TxStatus.COMPLETED
    assert event.transaction.balance_cents is None
    assert await ledger.pool.fetchval("SELECT count(*) FROM refund_tombstones WHERE ref_id = 'bet-late'") == 1

    late = await ledger.settle(command("bet-late", TxType.BET, "p-1", 300))
    assert (late.transaction.status, late.error_code) == (TxStatus.REJECTED, ErrorCode.BET_ALREADY_REFUNDED)
    assert (await ledger.operator.ledger()).apply_counts == {}
    assert (await ledger.operator.player("p-1")).balance_cents == 10_000


async def test_refund_after_a_win_on_the_round_is_rejected_already_settled(ledger: Harness) -> None:
    await ledger.settle(command("bet-s", TxType.BET, "p-2", 100, round_id="round-s"))
    await ledger.settle(command("win-s", TxType.WIN, "p-2", 400, round_id="round-s"))
    event = await ledger.settle(command("refund-s", TxType.REFUND, "p-2", 100, original_ref_id="bet-s"))

    assert (event.transaction.status, event.error_code) == (TxStatus.REJECTED, ErrorCode.BET_ALREADY_SETTLED)
    assert op_id("refund-s") not in (await ledger.operator.ledger()).apply_counts
    assert (await ledger.operator.player("p-2")).balance_cents == 10_300


async def test_win_after_its_bet_was_refunded_is_rejected_already_refunded(ledger: Harness) -> None:
    await ledger.settle(command("bet-r", TxType.BET, "p-3", 100, round_id="round-r"))
    refund = await ledger.settle(command("refund-r", TxType.REFUND, "p-3", 100, original_ref_id="bet-r"))
    assert refund.transaction.status is TxStatus.COMPLETED
    assert refund.transaction.balance_cents == 10_000

    win = await ledger.settle(command("win-r", TxType.WIN, "p-3", 900, round_id="round-r"))
    assert (win.transaction.status, win.error_code) == (TxStatus.REJECTED, ErrorCode.BET_ALREADY_REFUNDED)
    assert (await ledger.operator.player("p-3")).balance_cents == 10_000


async def test_second_refund_replays_the_first(ledger: Harness) -> None:
    await ledger.settle(command("bet-2r", TxType.BET, "p-4", 100))
    first = await ledger.settle(command("refund-2r-a", TxType.REFUND, "p-4", 100, original_ref_id="bet-2r"))
    second = await ledger.settle(command("refund-2r-b", TxType.REFUND, "p-4", 100, original_ref_id="bet-2r"))

    assert first.transaction.status is second.transaction.status is TxStatus.COMPLETED
    assert second.transaction.balance_cents == first.transaction.balance_cents == 10_000
    assert second.transaction.operator_transaction_id == first.transaction.operator_transaction_id
    counts = (await ledger.operator.ledger()).apply_counts
    assert op_id("refund-2r-b") not in counts
    assert counts[op_id("refund-2r-a")] == 1
    assert (await ledger.operator.player("p-4")).balance_cents == 10_000


async def test_refund_amount_must_equal_the_bets(ledger: Harness) -> None:
    await ledger.settle(command("bet-am", TxType.BET, "p-5", 100))
    event = await ledger.settle(command("refund-am", TxType.REFUND, "p-5", 99, original_ref_id="bet-am"))

    assert (event.transaction.status, event.error_code) == (TxStatus.REJECTED, ErrorCode.AMOUNT_MISMATCH)
    assert (await ledger.operator.player("p-5")).balance_cents == 9_900
