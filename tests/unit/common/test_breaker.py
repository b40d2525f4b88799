"""The circuit breaker (`hub_common.breaker`) with a controlled clock: examples, then properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub_common.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state(cb: CircuitBreaker) -> BreakerState:
    # A call, not the property: mypy would keep narrowing `cb.state` across the calls that change it.
    return cb.state


def breaker(clock: Clock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    def record(cb: CircuitBreaker, _: BreakerState) -> None:
        if changes is not None:
            changes.append(cb.state)

    return CircuitBreaker("rgs", failure_threshold=3, open_s=30, clock=clock, on_change=record)


def test_opens_after_consecutive_failures_only() -> None:
    clock, changes = Clock(), list[BreakerState]()
    cb = breaker(clock, changes)
    for _ in range(2):
        assert cb.allow()
        cb.record_failure()
    cb.record_success()  # resets the streak
    for _ in range(2):
        cb.record_failure()
    assert state(cb) is BreakerState.CLOSED
    cb.record_failure()
    assert state(cb) is BreakerState.OPEN
    assert not cb.allow()
    assert cb.retry_in() == 30
    assert changes == [BreakerState.OPEN]


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock, changes = Clock(), list[BreakerState]()
    cb = breaker(clock, changes)
    for _ in range(3):
        cb.record_failure()
    clock.now += 29
    assert cb.acquire() == 1
    clock.now += 2
    assert cb.acquire() == 0
    assert state(cb) is BreakerState.HALF_OPEN
    assert cb.acquire() == 30  # only one probe at a time
    cb.record_success()
    assert state(cb) is BreakerState.CLOSED
    assert cb.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def fail_the_probe(cb: CircuitBreaker, clock: Clock) -> None:
    """Three failures open it; past its 30 s open period one probe is let through, and fails."""
    for _ in range(3):
        cb.record_failure()
    clock.now += 31
    assert cb.allow()
    cb.record_failure()


def test_failed_probe_reopens_for_another_period() -> None:
    clock = Clock()
    cb = breaker(clock)
    fail_the_probe(cb, clock)
    assert state(cb) is BreakerState.OPEN
    clock.now += 29
    assert not cb.allow()
    clock.now += 2
    assert cb.allow()


def test_a_released_probe_frees_the_slot() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 31
    assert cb.allow()
    cb.release()
    assert cb.allow()


def test_a_late_failure_while_open_does_not_extend_the_period() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 20
    cb.record_failure()  # a call started before the circuit opened
    clock.now += 11
    assert cb.allow()


operations = st.lists(
    st.one_of(st.just("acquire"), st.just("success"), st.just("failure"), st.just("release"), st.floats(0, 40)),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=operations, threshold=st.integers(1, 4))
def test_no_call_while_open_one_probe_at_a_time_and_retry_in_tells_the_truth(
    ops: list[str | float], threshold: int
) -> None:
    clock = Clock()
    cb = CircuitBreaker("p", failure_threshold=threshold, open_s=30, clock=clock)
    streak = 0
    opened_at: float | None = None
    probe_out = False
    for op in ops:
        if isinstance(op, float):
            clock.now += op
            continue
        if op == "acquire":
            before = state(cb)
            predicted = cb.retry_in()
            wait = cb.acquire()
            assert wait == predicted
            if before is BreakerState.CLOSED:
                assert wait == 0
            elif wait == 0:
                assert not probe_out, "a second probe while one is out"
                assert opened_at is not None and clock.now - opened_at >= 30, "a call before the period ended"
                probe_out = True
        elif op == "success":
            cb.record_success()
            streak, opened_at, probe_out = 0, None, False
            assert state(cb) is BreakerState.CLOSED
        elif op == "failure":
            was = state(cb)
            cb.record_failure()
            streak += 1
            probe_out = False
            if was is BreakerState.HALF_OPEN or (was is BreakerState.CLOSED and streak >= threshold):
                opened_at = clock.now
                assert state(cb) is BreakerState.OPEN
            else:
                assert state(cb) is was
        else:
            cb.release()
            probe_out = False


def patient(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("rgs", failure_threshold=3, open_s=30, clock=clock, quiet_s=10)


def test_with_quiet_s_a_streak_while_other_calls_succeed_keeps_the_circuit_closed() -> None:
    clock = Clock()
    cb = patient(clock)
    for _ in range(20):  # a steady share of rejected calls, and a long unlucky streak of them
        cb.record_success()
        clock.now += 0.5
        for _ in range(4):
            cb.record_failure()
            clock.now += 0.1
    assert state(cb) is BreakerState.CLOSED
    assert cb.allow()


def test_with_quiet_s_a_peer_that_went_down_opens_it_once_quiet_for_that_long() -> None:
    clock = Clock()
    cb = patient(clock)
    cb.record_success()
    for _ in range(9):
        clock.now += 1
        cb.record_failure()
    assert state(cb) is BreakerState.CLOSED  # 9 s since the last success
    clock.now += 1
    cb.record_failure()
    assert state(cb) is BreakerState.OPEN


def test_with_quiet_s_a_peer_that_never_answered_opens_it_at_the_threshold() -> None:
    cb = patient(Clock())
    for _ in range(3):
        cb.record_failure()
    assert state(cb) is BreakerState.OPEN


def test_with_quiet_s_a_failed_probe_reopens_at_once() -> None:
    clock = Clock()
    cb = patient(clock)
    cb.record_success()
    clock.now += 10
    fail_the_probe(cb, clock)
    assert state(cb) is BreakerState.OPEN


def test_quiet_s_is_not_negative() -> None:
    with pytest.raises(ValueError, match="quiet_s"):
        CircuitBreaker("rgs", failure_threshold=3, open_s=30, quiet_s=-1)
