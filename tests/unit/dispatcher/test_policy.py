from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from hub_common.schemas import Outcome
from hub_dispatcher.policy import RetryPolicy, classify, parse_retry_after


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, Outcome.DELIVERED),
        (204, Outcome.DELIVERED),
        (301, Outcome.RETRY),
        (400, Outcome.DEAD_LETTER),
        (401, Outcome.DEAD_LETTER),
        (404, Outcome.DEAD_LETTER),
        (410, Outcome.DEAD_LETTER),
        (408, Outcome.RETRY),
        (429, Outcome.RETRY),
        (500, Outcome.RETRY),
        (503, Outcome.RETRY),
        (None, Outcome.RETRY),
    ],
)
def test_classification_follows_the_contract(status: int | None, outcome: Outcome) -> None:
    assert classify(status) is outcome


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_delay_follows_the_schedule_within_jitter() -> None:
    policy = RetryPolicy([5_000, 300_000], jitter=0.2, retry_after_max_ms=3_600_000, rng=random.Random(7))
    first = [policy.delay_ms(1) for _ in range(200)]
    second = [policy.delay_ms(2) for _ in range(200)]
    assert all(4_000 <= d <= 6_000 for d in first)
    assert all(240_000 <= d <= 360_000 for d in second)
    assert len({round(d) for d in first}) > 100  # actually jittered, not a constant
    assert policy.max_attempts == 3
    assert policy.can_retry(2)
    assert not policy.can_retry(3)


def test_retry_after_lengthens_the_wait_but_is_capped() -> None:
    policy = RetryPolicy([1_000], jitter=0.0, retry_after_max_ms=60_000)
    assert policy.delay_ms(1, retry_after_s=0.5) == 1_000  # never earlier than the schedule
    assert policy.delay_ms(1, retry_after_s=30) == 30_000
    assert policy.delay_ms(1, retry_after_s=86_400) == 60_000
