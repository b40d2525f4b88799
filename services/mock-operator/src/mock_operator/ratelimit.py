"""Sliding-window rate limit of the operator API, and the exact "most calls in any window" measure.

A call at time `t` counts against the limit while `now - t < window`; the window therefore holds the calls of
the half-open interval `(now - window, now]`, and two calls exactly one window apart never share one.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

WINDOW_S = 60.0


class SlidingWindowLimiter:
    def __init__(self, limit: int, window_s: float = WINDOW_S) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.window_s = window_s
        self._accepted: deque[float] = deque()

    def try_acquire(self, now: float) -> float | None:
        """Count a call at `now`; `None` if accepted, else the seconds until a slot frees."""
        self._evict(now)
        if len(self._accepted) < self.limit:
            self._accepted.append(now)
            return None
        # With the limit lowered at run time more than `limit` calls may still be counted: enough of the oldest
        # must leave for one more to fit.
        blocking = self._accepted[len(self._accepted) - self.limit]
        return blocking + self.window_s - now

    def in_window(self, now: float) -> int:
        self._evict(now)
        return len(self._accepted)

    def reset(self) -> None:
        self._accepted.clear()

    def _evict(self, now: float) -> None:
        while self._accepted and now - self._accepted[0] >= self.window_s:
            self._accepted.popleft()


def retry_after_header(seconds: float) -> str:
    """`Retry-After` is whole seconds; round up so a client that obeys it is never early."""
    return str(max(1, math.ceil(seconds)))


def max_in_window(timestamps: Iterable[float], window_s: float = WINDOW_S) -> int:
    """The largest number of `timestamps` inside any window of the limiter's shape (two pointers, exact)."""
    ordered = sorted(timestamps)
    best = 0
    start = 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best
