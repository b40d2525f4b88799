"""A consecutive-failure circuit breaker: stop calling a peer that is down, then probe it.

CLOSED counts consecutive failures; at the threshold it OPENs. After `open_s` the next caller becomes the one
HALF_OPEN probe: its success closes the circuit, its failure re-opens it for another `open_s`. A call that ends
without a verdict (cancelled) must `release()` its claim, so the next caller can probe. A failure reported
while OPEN comes from a call started before it opened: it says nothing new and does not extend the period.

Callers claim a call with `allow()` (a yes/no) or `acquire()` (the seconds to wait, 0 = go), then report
`record_success()` / `record_failure()`; what counts as a failure is the caller's business.

With `quiet_s`, consecutive failures are not enough: the peer must also have answered no call successfully
for that long. A peer that fails a steady share of calls for reasons of their own (some payloads rejected, and
retried, and rejected again) answers the others all along and keeps its circuit closed, where a streak of a few
failures comes by chance every few hundred calls (and in every burst of due retries) and would stop the
healthy calls with it; a peer that is down still opens it, `quiet_s` after its last success at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    # Numeric so the state can be exported as a gauge.
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


# Called with the breaker (its new `state`) and the state it left.
StateListener = Callable[["CircuitBreaker", BreakerState], None]


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: StateListener | None = None,
        quiet_s: float = 0.0,
    ) -> None:
        if failure_threshold < 1 or open_s <= 0 or quiet_s < 0:
            raise ValueError("failure_threshold must be at least 1, open_s positive and quiet_s not negative")
        self.name = name
        self.failure_threshold = failure_threshold
        self.open_s = open_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self.quiet_s = quiet_s
        self._succeeded_at: float | None = None

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures so far (reset by a success)."""
        return self._failures

    def retry_in(self) -> float:
        """Seconds until a call may go out; 0 when one may go now. Claims nothing."""
        if self._state is BreakerState.CLOSED:
            return 0.0
        if self._state is BreakerState.OPEN:
            remaining = self._opened_at + self.open_s - self._clock()
            if remaining > 0:
                return remaining
        # Due for a probe: free unless one is out, and then no sooner than another period.
        return self.open_s if self._probing else 0.0

    def acquire(self) -> float:
        """Claim a call: 0 means go (as the probe when not CLOSED), else the seconds to wait."""
        wait = self.retry_in()
        if wait > 0 or self._state is BreakerState.CLOSED:
            return wait
        if self._state is BreakerState.OPEN:
            self._set(BreakerState.HALF_OPEN)
        self._probing = True
        return 0.0

    def allow(self) -> bool:
        """May a call go out now? The caller must report its result (or `release()`)."""
        return self.acquire() == 0.0

    def record_success(self) -> None:
        self._probing = False
        self._failures = 0
        if self.quiet_s:
            self._succeeded_at = self._clock()
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._probing = False
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self.failure_threshold and self._quiet()
        ):
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def _quiet(self) -> bool:
        """No success for `quiet_s` (or none at all): the failures are the peer's, not a few calls'."""
        return self._succeeded_at is None or self._clock() - self._succeeded_at >= self.quiet_s

    def release(self) -> None:
        """A claimed call ended without a verdict (cancelled): let the next caller probe."""
        self._probing = False

    def _set(self, state: BreakerState) -> None:
        previous, self._state = self._state, state
        if self._on_change is not None:
            self._on_change(self, previous)
