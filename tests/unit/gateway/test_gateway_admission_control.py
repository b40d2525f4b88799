"""Admission control's decisions on a given budget schedule and open work (no database: the reads are given)."""

from __future__ import annotations

import pytest

from hub_common.operator import BudgetOutlook, OperatorSettings, balance_caller
from hub_common.schemas import TxType
from hub_gateway.admission_control import AdmissionControl, AdmissionPolicy, OpenWork

OPERATOR = OperatorSettings(rate_per_minute=60, window_s=60, safety_margin_s=0)
POLICY = AdmissionPolicy(bet_useful_life_s=30, client_bet_share=0.5, client_bet_floor=2, balance_share=0.1)
# A budget spending one call a second for a while: one slot frees every second.
STEADY = BudgetOutlook(60, 60.0, free=tuple((float(s), 1) for s in range(1, 61)))


async def control(
    work: OpenWork, outlook: BudgetOutlook = STEADY, policy: AdmissionPolicy = POLICY
) -> AdmissionControl:
    async def read_outlook() -> BudgetOutlook:
        return outlook

    async def read_work() -> OpenWork:
        return work

    built = AdmissionControl(policy, read_outlook=read_outlook, read_work=read_work, idle=BudgetOutlook.idle(OPERATOR))
    await built.refresh()
    return built


async def test_the_wait_counts_the_work_ahead_in_priority_order() -> None:
    admission = await control(OpenWork(credits=5, bets=10, bets_by_client={"a": 10}))
    # A credit goes after the 5 open credits; a BET after those and the 10 open BETs.
    assert admission.forecast(TxType.WIN).wait_s == 6
    assert admission.forecast(TxType.REFUND).wait_s == 6
    assert admission.forecast(TxType.BET).wait_s == 16


async def test_a_bet_past_its_useful_life_is_refused_with_an_honest_retry_after() -> None:
    admission = await control(OpenWork(credits=10, bets=30, bets_by_client={"a": 15, "b": 15}))
    refusal = admission.refusal("c", TxType.BET)
    assert refusal is not None and refusal.reason == "bet_wait"
    # The BET would go at 41 s: 11 s past its 30 s life, so retry in 11 s.
    assert refusal.retry_after_s == 11
    # Credits are never refused, whatever the queue.
    assert admission.refusal("c", TxType.WIN) is None
    assert admission.refusal("c", TxType.REFUND) is None


async def test_credits_ahead_shrink_the_bet_capacity() -> None:
    assert (await control(OpenWork())).bet_capacity() == 30
    assert (await control(OpenWork(credits=12))).bet_capacity() == 18
    assert (await control(OpenWork(credits=40))).bet_capacity() == 0


async def test_one_client_cannot_take_more_than_its_share() -> None:
    admission = await control(OpenWork(bets=15, bets_by_client={"greedy": 15}))
    refusal = admission.refusal("greedy", TxType.BET)
    assert refusal is not None and refusal.reason == "client_quota"
    assert 1 <= refusal.retry_after_s <= POLICY.bet_useful_life_s
    # Another client still gets in: the queue has room.
    assert admission.refusal("modest", TxType.BET) is None


async def test_the_floor_holds_when_capacity_is_small() -> None:
    admission = await control(OpenWork(credits=28, bets=1, bets_by_client={"a": 1}))
    assert admission.bet_capacity() == 2
    assert admission.client_bet_quota() == 2
    assert admission.refusal("a", TxType.BET) is None


async def test_local_admissions_count_until_the_database_shows_them() -> None:
    admission = await control(OpenWork())
    for _ in range(15):
        assert admission.refusal("a", TxType.BET) is None
        admission.reserve("a", TxType.BET)
    # Counted from the decision on, committed or not; a failed admission gives its place back.
    admission.release("a", TxType.BET, admitted=False)
    assert admission.forecast(TxType.BET).wait_s == 15
    admission.reserve("a", TxType.BET)
    assert admission.forecast(TxType.BET).wait_s == 16
    refusal = admission.refusal("a", TxType.BET)
    assert refusal is not None and refusal.reason == "client_quota"


async def test_a_refresh_replaces_what_it_has_read() -> None:
    state = {"work": OpenWork()}

    async def read_outlook() -> BudgetOutlook:
        return STEADY

    async def read_work() -> OpenWork:
        return state["work"]

    admission = AdmissionControl(POLICY, read_outlook=read_outlook, read_work=read_work, idle=STEADY)
    await admission.refresh()
    for _ in range(3):
        admission.reserve("a", TxType.WIN)
        admission.release("a", TxType.WIN, admitted=True)
    assert admission.forecast(TxType.WIN).wait_s == 4
    state["work"] = OpenWork(credits=3)  # the database now shows them
    await admission.refresh()
    assert admission.forecast(TxType.WIN).wait_s == 4


async def test_the_operators_pause_is_waited_out_first() -> None:
    paused = BudgetOutlook(60, 60.0, pause_s=45.0, free=((0.0, 60),))
    admission = await control(OpenWork(), paused)
    assert admission.forecast(TxType.WIN).wait_s == 45
    refusal = admission.refusal("a", TxType.BET)
    assert refusal is not None and refusal.retry_after_s == 15


async def test_balance_reads_take_their_share_from_the_bets() -> None:
    # Balance reads took 30 of the 60 calls in the window: BETs get half of what credits leave.
    spent = {balance_caller("a"): 30}
    outlook = BudgetOutlook(60, 60.0, free=STEADY.free, spent=spent, next_expiry_s={balance_caller("a"): 7.0})
    admission = await control(OpenWork(bets=4), outlook)
    assert admission.forecast(TxType.BET).wait_s == 10
    assert admission.bet_capacity() == 15


@pytest.mark.parametrize(("spent", "refused"), [(5, False), (6, True)])
async def test_each_clients_balance_reads_are_held_to_their_share(spent: int, refused: bool) -> None:
    caller = balance_caller("a")
    outlook = BudgetOutlook(60, 60.0, free=((0.0, 60),), spent={caller: spent}, next_expiry_s={caller: 12.5})
    admission = await control(OpenWork(), outlook)
    refusal = admission.balance_refusal("a", timeout_s=2)
    assert (refusal is not None) is refused
    if refusal is not None:
        assert (refusal.reason, refusal.retry_after_s) == ("balance_share", 13)
    assert admission.balance_refusal("b", timeout_s=2) is None


async def test_a_balance_read_that_cannot_be_granted_in_time_is_refused_at_once() -> None:
    admission = await control(OpenWork(credits=20))
    refusal = admission.balance_refusal("a", timeout_s=2)
    assert refusal is not None and (refusal.reason, refusal.retry_after_s) == ("balance_wait", 21)


async def test_bets_on_their_way_take_the_free_slots_before_a_new_credit() -> None:
    # 5 calls possible now, then one a second: the 10 BETs ahead take the 5 free ones, then the WIN goes first.
    outlook = BudgetOutlook(60, 60.0, free=((0.0, 5), *((float(s), 1) for s in range(1, 56))))
    admission = await control(OpenWork(bets=10, bets_by_client={"a": 10}), outlook)
    assert admission.forecast(TxType.WIN).wait_s == 1
    assert admission.forecast(TxType.BET).wait_s == 6
