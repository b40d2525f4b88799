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


def test_failed_probe_reopens_for_another_period() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 31
    assert cb.allow()
    cb.record_failure()
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


def windowed(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("rgs", failure_threshold=3, open_s=30, clock=clock, window=10, failure_rate=0.8)


def test_with_a_window_a_streak_within_a_steady_partial_failure_rate_keeps_the_circuit_closed() -> None:
    cb = windowed(Clock())
    for _ in range(7):
        cb.record_success()
    for _ in range(3):
        cb.record_failure()  # 3 in a row, but 3 of the last 10
    assert state(cb) is BreakerState.CLOSED
    assert cb.allow()


def test_with_a_window_a_peer_that_goes_down_opens_it_once_the_window_is_mostly_failures() -> None:
    cb = windowed(Clock())
    for _ in range(10):
        cb.record_success()
    for failures in range(1, 11):
        cb.record_failure()
        if failures < 8:
            assert state(cb) is BreakerState.CLOSED, failures
    assert state(cb) is BreakerState.OPEN  # at the 8th failure: 8 of the last 10


def test_with_a_young_window_the_threshold_alone_opens_it() -> None:
    cb = windowed(Clock())
    for _ in range(3):
        cb.record_failure()
    assert state(cb) is BreakerState.OPEN


def test_closing_starts_a_fresh_window() -> None:
    clock = Clock()
    cb = windowed(clock)
    for _ in range(3):
        cb.record_failure()
    clock.now += 31
    assert cb.allow()
    cb.record_success()  # the probe closes the circuit
    for _ in range(6):
        cb.record_success()
    for _ in range(3):
        cb.record_failure()  # 3 of 9 since closing: the failures that opened it are forgotten
    assert state(cb) is BreakerState.CLOSED


def test_a_window_needs_a_sane_rate() -> None:
    with pytest.raises(ValueError, match="failure_rate"):
        CircuitBreaker("rgs", failure_threshold=3, open_s=30, window=10, failure_rate=1.5)
