"""When the shared budget (`hub_common.operator.budget`) can make its next grants: read from its tables.

The budget lets R grants into any window of W seconds (W = window_s + safety_margin_s). Seen at `now`, each of
the R "slots" is usable again when the grant occupying it leaves the window (granted_at + W), or now if it is
free; after its next use it is usable again W later. Taking grants as soon as possible (what the budget does
while there is a backlog), the k-th grant from now can be made at

    slot_s(k) = max(pause, free_at[(k - 1) mod R]) + floor((k - 1) / R) * W

with `free_at` sorted and `pause` the time left of the operator's Retry-After (`paused_until`). The grants in
the window are read grouped by the second they leave it (rounded up: a forecast errs on the late side), so a
read costs one small GROUP BY whatever the rate. Each grant names its caller (`budget.Budget(caller=...)`), so
the reader can tell the ledger's share from what balance reads and the reconciler's feed take.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg

from hub_common import db
from hub_common.operator.settings import OperatorSettings

# Grants are grouped by when they leave the window, in buckets of W / _BUCKETS (about a second at the defaults).
_BUCKETS = 60

_READ = """
WITH clock AS MATERIALIZED (SELECT clock_timestamp() AS now),
     pause AS (SELECT greatest(0, extract(epoch FROM b.paused_until - clock.now))::float8 AS s
               FROM operator_budget b, clock WHERE b.name = $1),
     used AS (SELECT g.caller, ceil(extract(epoch FROM g.granted_at + $2::interval - clock.now) / $3)::int AS bucket,
                     count(*)::int AS n
              FROM operator_budget_grants g, clock
              WHERE g.name = $1 AND g.granted_at > clock.now - $2::interval
              GROUP BY 1, 2)
SELECT coalesce((SELECT s FROM pause), 0) AS pause_s, used.caller, used.bucket, used.n
FROM (SELECT 1) AS one LEFT JOIN used ON true
"""


@dataclass(frozen=True)
class BudgetOutlook:
    rate: int
    window_s: float
    # Seconds until the operator's Retry-After pause ends (0: not paused).
    pause_s: float = 0.0
    # (seconds from now at which slots are usable again, how many), ascending; the counts add up to `rate`.
    free: tuple[tuple[float, int], ...] = ()
    # Grants in the window by caller, and per caller the seconds until its oldest one leaves the window.
    spent: Mapping[str, int] = field(default_factory=dict)
    next_expiry_s: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def idle(cls, settings: OperatorSettings) -> BudgetOutlook:
        """A budget nobody has used: every slot free now."""
        return cls(settings.rate_per_minute, _window_s(settings), free=((0.0, settings.rate_per_minute),))

    def slot_s(self, k: int) -> float:
        """Seconds from now until the k-th grant from now (1-based) can be made."""
        cycles, index = divmod(max(k, 1) - 1, self.rate)
        seen = 0
        for at, count in self.free:
            seen += count
            if index < seen:
                return max(self.pause_s, at) + cycles * self.window_s
        raise AssertionError("the slots add up to the rate")

    def grants_within(self, seconds: float) -> int:
        """How many grants can be made from now until `seconds` from now (the inverse of `slot_s`)."""
        total = 0
        for at, count in self.free:
            start = max(self.pause_s, at)
            if start <= seconds:
                total += count * (math.floor((seconds - start) / self.window_s) + 1)
        return total


def _window_s(settings: OperatorSettings) -> float:
    return settings.window_s + settings.safety_margin_s


async def read_outlook(conn: db.Connection | asyncpg.Pool, settings: OperatorSettings) -> BudgetOutlook:
    """The budget named in `settings` as it stands now (no lock: a forecast, not a grant)."""
    window = _window_s(settings)
    bucket_s = window / _BUCKETS
    rows = await conn.fetch(_READ, settings.budget_name, timedelta(seconds=window), bucket_s)
    rate = settings.rate_per_minute
    leaving: dict[int, int] = {}
    spent: dict[str, int] = {}
    next_expiry: dict[str, float] = {}
    for row in rows:
        if row["caller"] is None:
            continue  # the one row of an unused window
        bucket, n, caller = int(row["bucket"]), int(row["n"]), str(row["caller"])
        leaving[bucket] = leaving.get(bucket, 0) + n
        spent[caller] = spent.get(caller, 0) + n
        next_expiry[caller] = min(next_expiry.get(caller, math.inf), bucket * bucket_s)
    used = sum(leaving.values())
    free: list[tuple[float, int]] = [(0.0, rate - used)] if used < rate else []
    # More grants than the rate in the window: a rate lowered since (the extra ones free no slot).
    excess = max(0, used - rate)
    for bucket in sorted(leaving):
        count = leaving[bucket]
        skipped = min(excess, count)
        excess -= skipped
        if count > skipped:
            free.append((bucket * bucket_s, count - skipped))
    pause_s = float(rows[0]["pause_s"]) if rows else 0.0
    return BudgetOutlook(rate, window, pause_s, tuple(free), spent, next_expiry)
