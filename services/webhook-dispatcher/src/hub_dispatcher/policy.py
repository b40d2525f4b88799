"""Pure delivery rules: what a response means, and how long to wait before the next attempt."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from hub_common.schemas import Outcome

RETRYABLE_4XX = frozenset({408, 429})


def classify(status: int | None) -> Outcome:
    """`None` is a timeout or connection error. 3xx is a failure, not followed: the URL is configuration."""
    if status is None:
        return Outcome.RETRY
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if 400 <= status < 500 and status not in RETRYABLE_4XX:
        return Outcome.DEAD_LETTER
    return Outcome.RETRY


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date); None when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class RetryPolicy:
    """Delay before attempt `n + 1` after attempt `n` failed: schedule[n-1] ± jitter, or Retry-After if later.

    Retry-After only lengthens the wait (the schedule is the floor) and is capped, so a receiver cannot park
    a delivery for days.
    """

    def __init__(
        self,
        schedule_ms: Sequence[int],
        *,
        jitter: float,
        retry_after_max_ms: int,
        rng: random.Random | None = None,
    ) -> None:
        self.schedule_ms = list(schedule_ms)
        self.jitter = jitter
        self.retry_after_max_ms = retry_after_max_ms
        self._rng = rng or random.Random()

    @property
    def max_attempts(self) -> int:
        return len(self.schedule_ms) + 1

    def can_retry(self, attempt: int) -> bool:
        return attempt < self.max_attempts

    def delay_ms(self, attempt: int, retry_after_s: float | None = None) -> float:
        base = self.schedule_ms[attempt - 1]
        delay = base * self._rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s * 1000, float(self.retry_after_max_ms)))
        return delay
