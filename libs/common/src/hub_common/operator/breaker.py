"""A consecutive-failure circuit breaker: stop hammering an operator that is down."""

from __future__ import annotations

import time
from collections.abc import Callable


class CircuitBreaker:
    """Closed -> open after `failures` technical errors in a row; after `reset_s` one trial call is let through
    (half-open); its success closes the breaker, its failure reopens it."""

    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._reset_s = reset_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def is_open(self) -> bool:
        return self._opened_at is not None

    def retry_in(self) -> float:
        """Seconds until a call may be attempted; 0 when one may go now."""
        if self._opened_at is None:
            return 0.0
        remaining = self._opened_at + self._reset_s - self._clock()
        if remaining > 0:
            return remaining
        return self._reset_s if self._trial_in_flight else 0.0

    def before_call(self) -> float:
        """Claim the right to call: returns 0 (go) or the seconds to wait; a half-open trial is claimed here."""
        wait = self.retry_in()
        if wait == 0 and self._opened_at is not None:
            self._trial_in_flight = True
        return wait

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._trial_in_flight or self._consecutive >= self._threshold:
            self._opened_at = self._clock()
        self._trial_in_flight = False
