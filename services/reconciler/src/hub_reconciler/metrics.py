"""Prometheus metrics of the reconciler (served on /metrics by hub_common.http.Ops)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MISMATCHES = Counter(
    "hub_reconciliation_mismatches_total", "Mismatches emitted by the continuous reconciliation", ["kind"]
)
RESOLVED = Counter(
    "hub_reconciliation_mismatches_resolved_total",
    "Mismatches later cleared by the continuous reconciliation",
    ["kind"],
)
JOINED_RECORDS = Counter("hub_reconciliation_records_total", "Records consumed by the join", ["source"])
SWEEP_RUNS = Counter("hub_reconciliation_sweep_runs_total", "Sweeps of the join's state, by result", ["result"])
SWEEP_EVALUATED = Counter("hub_reconciliation_sweep_evaluated_total", "Operator ids evaluated by the join's sweep")
FEED_RECORDS = Counter("hub_reconciliation_feed_records_total", "Operator feed records stored and published")
FEED_PAGES = Counter("hub_reconciliation_feed_pages_total", "Operator feed pages read")
FEED_INVALID = Counter("hub_reconciliation_feed_invalid_records_total", "Operator feed items that are not records")
FEED_LAG = Gauge("hub_reconciliation_feed_lag_seconds", "How far behind now the operator feed has been read to its end")
DAILY_RUNS = Counter("hub_reconciliation_daily_runs_total", "Daily reconciliation runs", ["outcome"])
LAST_DAILY_SUCCESS = Gauge(
    "hub_reconciliation_daily_last_success_timestamp_seconds", "When the daily reconciliation last succeeded"
)
REPORT_SECONDS = Histogram("hub_reconciliation_report_seconds", "Duration of date-range reports")

# At 0 from the start, so that increase() sees the first failed run (the series would otherwise appear with it).
for _outcome in ("ok", "failed"):
    DAILY_RUNS.labels(_outcome)
