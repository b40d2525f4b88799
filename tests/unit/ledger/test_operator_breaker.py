"""The circuit breaker's states with a controlled clock."""

from __future__ import annotations

from hub_common.operator import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_and_half_opens_after_reset() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_s=10, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.before_call() == 0
    breaker.record_failure()
    assert breaker.before_call() == 10
    clock.now = 10
    assert breaker.before_call() == 0  # the one trial call
    assert breaker.before_call() > 0  # nobody else while it is in flight
    breaker.record_failure()
    assert breaker.retry_in() == 10
    clock.now = 20
    assert breaker.before_call() == 0
    breaker.record_success()
    assert breaker.retry_in() == 0
    assert breaker.before_call() == 0


def test_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failures=2, reset_s=1, clock=Clock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.retry_in() == 0
