"""A BET's useful life at the ledger (contract section 2): never sent after `send_by`, REJECTED BET_EXPIRED with
nothing debited; and credits queued behind a player's BET are not made to wait behind other players' BETs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hub_common.schemas import ErrorCode, TxStatus, TxType
from hub_ledger.app import create_app
from hub_ledger.settings import LedgerSettings
from support.apps import serve
from support.ledger_it import Harness, command, op_id
from support.waits import eventually


async def test_a_bet_reaching_its_turn_after_its_useful_life_is_rejected_unsent(ledger: Harness) -> None:
    cmd = command("bet-stale", TxType.BET, "p-1", 250, send_by=datetime.now(UTC) - timedelta(seconds=1))
    event = await ledger.settle(cmd)

    assert (event.transaction.status, event.error_code) == (TxStatus.REJECTED, ErrorCode.BET_EXPIRED)
    assert event.transaction.error_code is ErrorCode.BET_EXPIRED
    assert ledger.events.of(cmd.ref_id) == [TxStatus.REJECTED]  # never PROCESSING: no call was prepared
    row = await ledger.row(cmd.ref_id)
    assert (row["error_code"], row["attempts"]) == ("BET_EXPIRED", 0)
    assert op_id(cmd.ref_id) not in (await ledger.operator.ledger()).apply_counts
    assert (await ledger.operator.player("p-1")).balance_cents == 10_000


async def test_a_bet_still_waiting_for_budget_at_the_end_of_its_life_is_not_sent(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    # One call a minute: the first BET takes it; the second would wait a minute, but has 1.5 s to live.
    settings = make_settings(rate_per_minute=1)
    first = command("bet-first", TxType.BET, "p-1", 100)
    second = command("bet-second", TxType.BET, "p-2", 100, send_by=datetime.now(UTC) + timedelta(seconds=1.5))
    async with serve(create_app(settings)):
        assert (await harness.settle(first)).transaction.status is TxStatus.COMPLETED
        event = await harness.settle(second)

    assert (event.transaction.status, event.error_code) == (TxStatus.REJECTED, ErrorCode.BET_EXPIRED)
    assert harness.events.of(second.ref_id) == [TxStatus.PROCESSING, TxStatus.REJECTED]
    assert (await harness.operator.stats()).total_calls == 1
    assert op_id(second.ref_id) not in (await harness.operator.ledger()).apply_counts
    assert (await harness.operator.player("p-2")).balance_cents == 10_000


async def test_a_win_behind_its_players_bet_goes_before_other_players_bets(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    # One call a second: BETs of six players queue for budget; then p-1's BET, and a WIN of p-1 behind it.
    settings = make_settings(rate_per_minute=1, window_s=1.0, safety_margin_s=0.0)
    others = [command(f"bet-o{i}", TxType.BET, f"p-{i}", 10) for i in range(2, 8)]
    mine = command("bet-mine", TxType.BET, "p-1", 10)
    win = command("win-mine", TxType.WIN, "p-1", 20, round_id="r-1")
    async with serve(create_app(settings)):
        for cmd in others:
            await harness.admit(cmd)
        await eventually(
            lambda: harness.pool.fetchval("SELECT count(*) = 6 FROM transactions WHERE status <> 'PENDING'"),
            what="the six BETs to be started",
        )
        await harness.admit(mine)
        await eventually(
            lambda: harness.pool.fetchval("SELECT status = 'PROCESSING' FROM transactions WHERE ref_id = 'bet-mine'"),
            what="p-1's BET to wait for budget",
        )
        await harness.admit(win)
        for cmd in [*others, mine, win]:
            await harness.events.wait_final(cmd.ref_id, timeout_s=60)

    applied = [r.transaction_id for r in (await harness.operator.ledger()).transactions]
    # Without the promotion p-1's BET would wait behind the other players' BETs, and the WIN behind it.
    later_bets = [i for i in applied[applied.index(op_id(win.ref_id)) :] if i.startswith(op_id("bet-o"))]
    assert applied.index(op_id(mine.ref_id)) < applied.index(op_id(win.ref_id))
    assert len(later_bets) >= 2, applied
