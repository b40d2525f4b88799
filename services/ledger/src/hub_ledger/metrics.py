"""The ledger's Prometheus metrics (module-level objects, registered once)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from hub_common.transactions import TxRow

TRANSITIONS = Counter("hub_ledger_transactions_total", "Final ledger outcomes", ["type", "status"])
COMMANDS = Counter("hub_ledger_commands_total", "Commands consumed from hub.commands", ["outcome"])
IN_FLIGHT = Gauge("hub_ledger_in_flight", "Commands fetched but not yet handled")
HANDLER_ERRORS = Counter("hub_ledger_handler_errors_total", "Errors while handling a command (retried)", ["kind"])
# Alert on any increase: a WIN/REFUND (or a compensating refund) the operator never confirmed within its deadline.
CREDIT_FAILED = Counter("hub_ledger_credit_failed_total", "WIN/REFUND given up after the deadline (alert)", ["type"])
BET_CANCELLED = Counter("hub_ledger_bet_cancelled_total", "BETs unresolved by their deadline, cancelled")
# BETs whose useful life ended before they were sent (REJECTED BET_EXPIRED): the gateway's forecast was too hopeful.
BET_EXPIRED = Counter("hub_ledger_bet_expired_total", "BETs not sent within their useful life", ["stage"])
COMPENSATIONS = Counter("hub_ledger_compensations_total", "Compensating refunds by outcome", ["outcome"])
LEASES_LOST = Counter(
    "hub_ledger_leases_lost_total",
    "Transactions this process stopped working on: its lease was taken over (or someone else finished it)",
)
SWEPT = Counter("hub_ledger_sweeper_resumed_total", "Stale PENDING/PROCESSING transactions resumed by the sweeper")
SWEEPER_RUNS = Counter("hub_ledger_sweeper_runs_total", "Sweeper runs", ["result"])
KEYS_DELETED = Counter("hub_ledger_idempotency_keys_deleted_total", "Expired idempotency keys deleted")
KEY_CLEANUP_RUNS = Counter("hub_ledger_key_cleanup_runs_total", "Idempotency key cleanup runs", ["result"])
GAUGE_RUNS = Counter("hub_ledger_state_gauge_runs_total", "Refreshes of the database state gauges", ["result"])
COMPENSATION_RUNS = Counter("hub_ledger_compensation_runs_total", "Compensation job runs", ["result"])
# The runbook's "average transaction duration": admission (created_at) to the final status (completed_at).
DURATION = Histogram(
    "hub_transaction_duration_seconds",
    "Time from admission to the final status, by type and final status",
    ["type", "status"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600, 21600, 86400),
)
# The runbook's operator "retry count": operator calls the ledger makes again after a failed one.
OPERATOR_RETRIES = Counter(
    "hub_ledger_operator_retries_total", "Operator calls to be made again after a failure", ["reason"]
)

# Children created at import (service start) at 0: increase() over a counter whose series appears with its first
# event misses that event, and the credit alert must fire on the very first one.
for _type in ("WIN", "REFUND", "CANCEL"):
    CREDIT_FAILED.labels(_type)
for _stage in ("queued", "budget"):
    BET_EXPIRED.labels(_stage)
for _type in ("BET", "WIN", "REFUND"):
    for _status in ("COMPLETED", "REJECTED", "FAILED"):
        TRANSITIONS.labels(_type, _status)
        DURATION.labels(_type, _status)
for _reason in ("rate_limited", "technical"):
    OPERATOR_RETRIES.labels(_reason)
DB_BATCH_SIZE = Histogram(
    "hub_ledger_db_batch_size", "Items per grouped database step", ["step"], buckets=(1, 2, 5, 10, 20, 50, 100, 200)
)


def finished(tx: TxRow) -> None:
    """Count a transaction that reached its final status (`tx` as written) and time it from its admission."""
    TRANSITIONS.labels(tx.type.value, tx.status.value).inc()
    if tx.completed_at is not None:
        DURATION.labels(tx.type.value, tx.status.value).observe(
            max((tx.completed_at - tx.created_at).total_seconds(), 0)
        )
