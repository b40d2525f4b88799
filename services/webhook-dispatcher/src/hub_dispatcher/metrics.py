"""Prometheus metrics of the dispatcher (label `endpoint` is the RGS client id: a small, configured set)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "hub_webhook_deliveries_total",
    "Webhook delivery attempts by result (delivered, retry, dead_letter, circuit_open).",
    ["endpoint", "result"],
)
LATENCY = Histogram(
    "hub_webhook_delivery_latency_seconds",
    "Time from sending a webhook to its answer (or failure).",
    ["endpoint"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
# The runbook's retries per webhook (its "average retry count"): how many retries a delivery needed before it
# ended, delivered or dead-lettered.
RETRIES_PER_DELIVERY = Histogram(
    "hub_webhook_retries_per_delivery",
    "Retries a webhook needed before it was delivered or dead-lettered.",
    ["endpoint", "outcome"],
    buckets=(0, 1, 2, 3, 4, 5, 6, 7, 10),
)
DEAD_LETTERS = Counter("hub_webhook_dlq_total", "Webhooks sent to the dead-letter topic.", ["endpoint", "reason"])
BREAKER_STATE = Gauge(
    "hub_webhook_circuit_state", "Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open.", ["endpoint"]
)
BREAKER_TRANSITIONS = Counter(
    "hub_webhook_circuit_transitions_total", "Circuit breaker state changes.", ["endpoint", "state"]
)
IN_FLIGHT = Gauge("hub_webhook_in_flight", "Deliveries in flight per consumer.", ["consumer"])
PURGED = Counter("hub_webhook_outbox_purged_total", "DELIVERED webhook_outbox rows purged after the retention.")
PURGE_RUNS = Counter("hub_webhook_purge_runs_total", "webhook_outbox purge runs by result.", ["result"])
SWEEPS = Counter("hub_webhook_sweeps_total", "Sweeps for PENDING and stale PROCESSING rows, by result.", ["result"])
