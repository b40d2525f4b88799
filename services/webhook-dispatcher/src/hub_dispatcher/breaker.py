"""A circuit breaker per endpoint: after sustained failures, stop calling it for a while, then probe.

CLOSED counts consecutive failures; at the threshold it OPENs. After `open_s` the next caller becomes the one
HALF_OPEN probe: success closes the circuit, failure re-opens it. An answer that is not a transport or server
failure (2xx, or a 4xx we dead-letter) proves the endpoint is up and counts as success.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import IntEnum

log = logging.getLogger(__name__)


class BreakerState(IntEnum):
    # Numeric so the state can be exported as a gauge.
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


StateListener = Callable[[str, BreakerState], None]


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        open_s: float,
        clock: Callable[[], float] = time.monotonic,
        on_change: StateListener | None = None,
    ) -> None:
        self.name = name
        self._threshold = failure_threshold
        self._open_s = open_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """May a call go out now? In HALF_OPEN only one probe at a time; the caller must record its result."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self._open_s:
                return False
            self._set(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self) -> None:
        self._probing = False
        self._failures = 0
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._probing = False
        self._failures += 1
        if self._state is BreakerState.HALF_OPEN or (
            self._state is BreakerState.CLOSED and self._failures >= self._threshold
        ):
            self._opened_at = self._clock()
            self._set(BreakerState.OPEN)

    def release(self) -> None:
        """A call that ended without a verdict (cancelled): let the next caller probe."""
        self._probing = False

    def _set(self, state: BreakerState) -> None:
        previous, self._state = self._state, state
        if state is BreakerState.OPEN:
            log.warning(
                "webhook circuit opened",
                extra={"endpoint": self.name, "failures": self._failures, "openS": self._open_s},
            )
        elif state is BreakerState.CLOSED:
            log.info("webhook circuit closed", extra={"endpoint": self.name, "from": previous.name})
        if self._on_change is not None:
            self._on_change(self.name, state)
