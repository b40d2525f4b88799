"""Gauges of the database's state for the runbook's alerts: stuck and long-running transactions, webhook
deliveries by status (the dead-letter depth), idempotency keys stuck in PROCESSING, table sizes, index usage.

Counters cannot express "how many are stuck right now", so one query refreshes them every interval. Every
ledger replica exports the same values; alert rules take the max.
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import orjson
from prometheus_client import REGISTRY, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from hub_common.db_metrics import hub_tables

STUCK = Gauge("hub_transactions_stuck", "Transactions PENDING/PROCESSING for longer than the stuck age (5 min)")
LONG_RUNNING = Gauge("hub_transactions_long_running", "Transactions PENDING/PROCESSING for longer than 30 s")
WEBHOOKS = Gauge("hub_webhook_outbox_rows", "webhook_outbox rows by status", ["status"])
KEYS_STUCK = Gauge("hub_idempotency_keys_stuck", "Idempotency keys PROCESSING for longer than an hour")
TABLE_BYTES = Gauge("hub_table_size_bytes", "Total size of the Hub's tables (runbook: table sizes)", ["table"])


class _IndexScans(Collector):
    """`hub_db_index_scans_total{table,index}`: PostgreSQL's own count of scans per index of a Hub table
    (`pg_stat_user_indexes.idx_scan`, since its statistics were reset), as last read by `refresh`. A counter: rate()
    shows which indexes queries use now; one that stays at 0 for weeks is a candidate to drop."""

    def __init__(self) -> None:
        self.scans: dict[tuple[str, str], int] = {}

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "hub_db_index_scans",
            "Index scans per index of the Hub's tables (pg_stat_user_indexes)",
            labels=["table", "index"],
        )
        for (table, index), scans in sorted(self.scans.items()):
            family.add_metric([table, index], scans)
        yield family


INDEX_SCANS = _IndexScans()
REGISTRY.register(INDEX_SCANS)

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
  (SELECT jsonb_object_agg(t, pg_total_relation_size(t::regclass))::text FROM unnest($3::text[]) t) AS sizes,
  (SELECT coalesce(jsonb_agg(jsonb_build_array(relname, indexrelname, idx_scan)), '[]'::jsonb)::text
     FROM pg_stat_user_indexes WHERE relname = ANY($4::text[])) AS index_scans
"""


async def refresh(pool: asyncpg.Pool, *, stuck_after_s: float, long_running_after_s: float = 30.0) -> None:
    row = await pool.fetchrow(_QUERY, stuck_after_s, long_running_after_s, list(TABLES), sorted(hub_tables()))
    assert row is not None  # one row of aggregates, always
    STUCK.set(row["stuck"])
    LONG_RUNNING.set(row["long_running"])
    KEYS_STUCK.set(row["keys_stuck"])
    by_status = orjson.loads(row["webhooks"])
    for status in WEBHOOK_STATUSES:
        WEBHOOKS.labels(status).set(by_status.get(status, 0))
    for table, size in orjson.loads(row["sizes"]).items():
        TABLE_BYTES.labels(table).set(size)
    INDEX_SCANS.scans = {(table, index): scans for table, index, scans in orjson.loads(row["index_scans"])}
