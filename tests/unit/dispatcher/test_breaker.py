from __future__ import annotations

from hub_dispatcher.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def state(cb: CircuitBreaker) -> BreakerState:
    # A call, not the property: mypy would keep narrowing `cb.state` across the calls that change it.
    return cb.state


def breaker(clock: Clock, changes: list[BreakerState]) -> CircuitBreaker:
    return CircuitBreaker(
        "rgs", failure_threshold=3, open_s=30, clock=clock, on_change=lambda _, state: changes.append(state)
    )


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
    assert changes == [BreakerState.OPEN]


def test_half_open_lets_one_probe_through_and_closes_on_success() -> None:
    clock, changes = Clock(), list[BreakerState]()
    cb = breaker(clock, changes)
    for _ in range(3):
        cb.record_failure()
    clock.now += 29
    assert not cb.allow()
    clock.now += 2
    assert cb.allow()
    assert state(cb) is BreakerState.HALF_OPEN
    assert not cb.allow()  # only one probe at a time
    cb.record_success()
    assert state(cb) is BreakerState.CLOSED
    assert cb.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probe_reopens_for_another_period() -> None:
    clock, changes = Clock(), list[BreakerState]()
    cb = breaker(clock, changes)
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


def test_a_cancelled_probe_frees_the_slot() -> None:
    clock, changes = Clock(), list[BreakerState]()
    cb = breaker(clock, changes)
    for _ in range(3):
        cb.record_failure()
    clock.now += 31
    assert cb.allow()
    cb.release()
    assert cb.allow()
