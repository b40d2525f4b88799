"""What the mock operator saw: every `/v2` call that reached the rate limiter, accepted or not."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from mock_operator.models import MinuteCount, StatsOut
from mock_operator.ratelimit import WINDOW_S, max_in_window


@dataclass
class _Minute:
    count: int = 0
    accepted: int = 0
    rejected429: int = 0


class CallStats:
    def __init__(self) -> None:
        self._accepted_at: list[float] = []
        self._minutes: dict[int, _Minute] = {}
        self._by_endpoint: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._total = 0
        self._rejected429 = 0

    def record_call(self, now: float, endpoint: str, *, accepted: bool) -> None:
        self._total += 1
        self._by_endpoint[endpoint] += 1
        minute = self._minutes.setdefault(int(now // 60) * 60, _Minute())
        minute.count += 1
        if accepted:
            self._accepted_at.append(now)
            minute.accepted += 1
        else:
            self._rejected429 += 1
            minute.rejected429 += 1

    def record_fault(self, kind: str) -> None:
        self._faults[kind] += 1

    def snapshot(self, rate_limit_per_minute: int) -> StatsOut:
        return StatsOut(
            total_calls=self._total,
            accepted=len(self._accepted_at),
            rejected429=self._rejected429,
            max_in_any_sixty_seconds=max_in_window(self._accepted_at, WINDOW_S),
            rate_limit_per_minute=rate_limit_per_minute,
            calls_per_minute=[
                MinuteCount(
                    minute=datetime.fromtimestamp(start, UTC),
                    count=m.count,
                    accepted=m.accepted,
                    rejected429=m.rejected429,
                )
                for start, m in sorted(self._minutes.items())
            ],
            by_endpoint=dict(self._by_endpoint),
            faults=dict(self._faults),
        )

    def reset(self) -> None:
        self._accepted_at.clear()
        self._minutes.clear()
        self._by_endpoint.clear()
        self._faults.clear()
        self._total = 0
        self._rejected429 = 0
