"""The ledger's Prometheus metrics (module-level objects, registered once)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TRANSITIONS = Counter("hub_ledger_transactions_total", "Final ledger outcomes", ["type", "status"])
COMMANDS = Counter("hub_ledger_commands_total", "Commands consumed from hub.commands", ["outcome"])
IN_FLIGHT = Gauge("hub_ledger_in_flight", "Commands fetched but not yet handled")
HANDLER_ERRORS = Counter("hub_ledger_handler_errors_total", "Errors while handling a command (retried)", ["kind"])
# Alert on any increase: a WIN/REFUND (or a compensating refund) the operator never confirmed within its deadline.
CREDIT_FAILED = Counter("hub_ledger_credit_failed_total", "WIN/REFUND given up after the deadline (alert)", ["type"])
BET_CANCELLED = Counter("hub_ledger_bet_cancelled_total", "BETs unresolved by their deadline, cancelled")
COMPENSATIONS = Counter("hub_ledger_compensations_total", "Compensating refunds by outcome", ["outcome"])
SWEPT = Counter("hub_ledger_sweeper_resumed_total", "Stale PENDING/PROCESSING transactions resumed by the sweeper")
SWEEPER_RUNS = Counter("hub_ledger_sweeper_runs_total", "Sweeper runs", ["result"])
KEYS_DELETED = Counter("hub_ledger_idempotency_keys_deleted_total", "Expired idempotency keys deleted")
KEY_CLEANUP_RUNS = Counter("hub_ledger_key_cleanup_runs_total", "Idempotency key cleanup runs", ["result"])
GAUGE_RUNS = Counter("hub_ledger_state_gauge_runs_total", "Refreshes of the database state gauges", ["result"])
COMPENSATION_RUNS = Counter("hub_ledger_compensation_runs_total", "Compensation job runs", ["result"])

# Children created at import (service start) at 0: increase() over a counter whose series appears with its first
# event misses that event, and the credit alert must fire on the very first one.
for _type in ("WIN", "REFUND", "CANCEL"):
    CREDIT_FAILED.labels(_type)
for _type in ("BET", "WIN", "REFUND"):
    for _status in ("COMPLETED", "REJECTED", "FAILED"):
        TRANSITIONS.labels(_type, _status)
DB_BATCH_SIZE = Histogram(
    "hub_ledger_db_batch_size", "Items per grouped database step", ["step"], buckets=(1, 2, 5, 10, 20, 50, 100, 200)
)
