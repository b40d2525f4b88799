"""Gauges of the database's state for the runbook's alerts: stuck and long-running transactions, webhook
deliveries by status (the dead-letter depth), idempotency keys stuck in PROCESSING, table sizes.

Counters cannot express "how many are stuck right now", so one query refreshes them every interval. Every
ledger replica exports the same values; alert rules take the max.
"""

from __future__ import annotations

import asyncpg
import orjson
from prometheus_client import Gauge

STUCK = Gauge("hub_transactions_stuck", "Transactions PENDING/PROCESSING for longer than the stuck age (5 min)")
LONG_RUNNING = Gauge("hub_transactions_long_running", "Transactions PENDING/PROCESSING for longer than 30 s")
WEBHOOKS = Gauge("hub_webhook_outbox_rows", "webhook_outbox rows by status", ["status"])
KEYS_STUCK = Gauge("hub_idempotency_keys_stuck", "Idempotency keys PROCESSING for longer than an hour")
TABLE_BYTES = Gauge("hub_table_size_bytes", "Total size of the Hub's tables (runbook: table sizes)", ["table"])

WEBHOOK_STATUSES = ("PENDING", "PROCESSING", "DELIVERED", "FAILED", "DEAD_LETTER")
TABLES = ("transactions", "idempotency_keys", "webhook_outbox", "event_outbox", "audit_log")

_QUERY = """
SELECT
  (SELECT count(*) FROM transactions WHERE status IN ('PENDING', 'PROCESSING')
                                      AND created_at < now() - make_interval(secs => $1)) AS stuck,
  (SELECT count(*) FROM transactions WHERE status IN ('PENDING', 'PROCESSING')
                                      AND created_at < now() - make_interval(secs => $2)) AS long_running,
  (SELECT count(*) FROM idempotency_keys WHERE status = 'PROCESSING'
                                          AND created_at < now() - interval '1 hour') AS keys_stuck,
  (SELECT coalesce(jsonb_object_agg(status, n), '{}'::jsonb)::text
     FROM (SELECT status, count(*) AS n FROM webhook_outbox GROUP BY status) s) AS webhooks,
  (SELECT jsonb_object_agg(t, pg_total_relation_size(t::regclass))::text FROM unnest($3::text[]) t) AS sizes
"""


async def refresh(pool: asyncpg.Pool, *, stuck_after_s: float, long_running_after_s: float = 30.0) -> None:
    row = await pool.fetchrow(_QUERY, stuck_after_s, long_running_after_s, list(TABLES))
    assert row is not None  # one row of aggregates, always
    STUCK.set(row["stuck"])
    LONG_RUNNING.set(row["long_running"])
    KEYS_STUCK.set(row["keys_stuck"])
    by_status = orjson.loads(row["webhooks"])
    for status in WEBHOOK_STATUSES:
        WEBHOOKS.labels(status).set(by_status.get(status, 0))
    for table, size in orjson.loads(row["sizes"]).items():
        TABLE_BYTES.labels(table).set(size)
