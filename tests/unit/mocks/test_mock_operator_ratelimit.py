from __future__ import annotations

import pytest

from mock_operator.ratelimit import SlidingWindowLimiter, max_in_window, retry_after_header


def test_accepts_up_to_the_limit_then_reports_when_the_oldest_call_leaves() -> None:
    limiter = SlidingWindowLimiter(3)
    assert [limiter.try_acquire(t) for t in (100.0, 110.0, 120.0)] == [None, None, None]
    assert limiter.try_acquire(130.0) == pytest.approx(30.0)  # 100 + 60 - 130
    assert limiter.try_acquire(159.5) == pytest.approx(0.5)


def test_a_call_exactly_one_window_old_no_longer_counts() -> None:
    limiter = SlidingWindowLimiter(1)
    assert limiter.try_acquire(0.0) is None
    assert limiter.try_acquire(59.999) is not None
    assert limiter.try_acquire(60.0) is None


def test_refused_calls_do_not_take_a_slot() -> None:
    limiter = SlidingWindowLimiter(2)
    limiter.try_acquire(0.0)
    limiter.try_acquire(1.0)
    for t in range(2, 60):
        assert limiter.try_acquire(float(t)) is not None
    assert limiter.in_window(59.0) == 2
    assert limiter.try_acquire(60.0) is None


def test_lowering_the_limit_waits_until_enough_old_calls_leave() -> None:
    limiter = SlidingWindowLimiter(5)
    for t in (0.0, 10.0, 20.0, 30.0, 40.0):
        assert limiter.try_acquire(t) is None
    limiter.limit = 2
    # Four calls must leave before a third fits under a limit of 2: the one at t=30 leaves at 90.
    assert limiter.try_acquire(45.0) == pytest.approx(45.0)


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        SlidingWindowLimiter(0)


@pytest.mark.parametrize(("seconds", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (29.0, "29"), (0.0, "1")])
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


@pytest.mark.parametrize(
    ("timestamps", "expected"),
    [
        ([], 0),
        ([5.0], 1),
        ([0.0, 60.0, 120.0], 1),  # exactly a window apart: never together
        ([0.0, 59.9, 60.0], 2),
        ([0.0, 1.0, 2.0, 61.5, 62.0], 3),  # 2.0, 61.5, 62.0 share (2.0, 62.0]
        ([30.0, 0.0, 10.0, 20.0], 4),  # order does not matter
    ],
)
def test_max_in_window_is_exact(timestamps: list[float], expected: int) -> None:
    assert max_in_window(timestamps) == expected


def test_max_in_window_never_exceeds_what_the_limiter_admits() -> None:
    limiter = SlidingWindowLimiter(7)
    accepted = [t / 4 for t in range(2000) if limiter.try_acquire(t / 4) is None]
    assert max_in_window(accepted) == 7
