"""The budget's schedule of next grants (`BudgetOutlook`): slot times and their inverse, from the window's grants."""

from __future__ import annotations

import pytest

from hub_common.operator import BudgetOutlook, OperatorSettings

SETTINGS = OperatorSettings(rate_per_minute=60, window_s=60, safety_margin_s=0)


def test_an_idle_budget_grants_the_rate_at_once_then_one_rate_per_window() -> None:
    idle = BudgetOutlook.idle(SETTINGS)
    assert [idle.slot_s(k) for k in (1, 60, 61, 120, 121)] == [0, 0, 60, 60, 120]
    assert [idle.grants_within(t) for t in (0, 59.9, 60, 120)] == [60, 60, 120, 180]


def test_a_full_window_frees_slots_as_its_grants_leave_it() -> None:
    # 60 calls made in one burst 1 s ago: nothing is possible for 59 s, then the whole rate again.
    burst = BudgetOutlook(60, 60.0, free=((59.0, 60),))
    assert burst.slot_s(1) == burst.slot_s(30) == 59.0
    assert burst.slot_s(61) == 119.0
    assert burst.grants_within(58) == 0
    assert burst.grants_within(59) == 60


def test_spread_grants_free_one_slot_each() -> None:
    # Half the window used, one call per second so far: 30 free now, then one a second.
    spread = BudgetOutlook(60, 60.0, free=((0.0, 30), *((float(s), 1) for s in range(31, 61))))
    assert spread.slot_s(30) == 0
    assert spread.slot_s(31) == 31
    assert spread.slot_s(35) == 35
    assert spread.grants_within(35) == 35


def test_the_operators_pause_delays_every_slot() -> None:
    paused = BudgetOutlook(60, 60.0, pause_s=20.0, free=((0.0, 50), (40.0, 10)))
    assert paused.slot_s(1) == 20.0
    assert paused.slot_s(55) == 40.0
    assert paused.grants_within(19) == 0
    assert paused.grants_within(20) == 50


@pytest.mark.parametrize("k", [1, 7, 59, 60, 61, 200, 1000])
def test_grants_within_is_the_inverse_of_slot_s(k: int) -> None:
    outlook = BudgetOutlook(60, 61.0, pause_s=3.0, free=((0.0, 20), (10.0, 25), (50.0, 15)))
    at = outlook.slot_s(k)
    assert outlook.grants_within(at) >= k
    assert outlook.grants_within(at - 0.001) < k
