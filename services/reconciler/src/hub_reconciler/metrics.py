"""Prometheus metrics of the reconciler (served on /metrics by hub_common.http.Ops)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MISMATCHES = Counter(
    "hub_reconciliation_mismatches_total", "Mismatches emitted by the continuous reconciliation", ["kind"]
)
JOINED_RECORDS = Counter("hub_reconciliation_records_total", "Records consumed by the join", ["source"])
FEED_RECORDS = Counter("hub_reconciliation_feed_records_total", "Operator feed records published")
FEED_POLLS = Counter("hub_reconciliation_feed_polls_total", "Operator feed polls", ["outcome"])
DAILY_RUNS = Counter("hub_reconciliation_daily_runs_total", "Daily reconciliation runs", ["outcome"])
LAST_DAILY_SUCCESS = Gauge(
    "hub_reconciliation_daily_last_success_timestamp_seconds", "When the daily reconciliation last succeeded"
)

# At 0 from the start, so that increase() sees the first failed run (the series would otherwise appear with it).
for _outcome in ("ok", "failed"):
    DAILY_RUNS.labels(_outcome)
