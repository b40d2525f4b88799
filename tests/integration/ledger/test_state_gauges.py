"""The state gauges behind the runbook's alerts, computed from a real database."""

from __future__ import annotations

import uuid

import asyncpg
from prometheus_client import REGISTRY

from hub_common import db
from hub_common.operator import operator_id
from hub_ledger import gauges


async def _tx(conn: db.Connection, status: str, age_s: float) -> uuid.UUID:
    tx_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, request_hash,
                                     status, created_at, operator_id)
           VALUES ($1, 'rgs', $2, 'BET', 'p', 1, 'EUR', 'h', $3, now() - make_interval(secs => $4), $5)""",
        tx_id,
        f"ref-{tx_id}",
        status,
        age_s,
        operator_id("rgs", f"ref-{tx_id}"),
    )
    return tx_id


def _value(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_gauges_count_what_the_alerts_need(database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await _tx(conn, "PENDING", 600)  # stuck and long-running
            await _tx(conn, "PROCESSING", 60)  # long-running only
            await _tx(conn, "PENDING", 1)  # neither
            await _tx(conn, "COMPLETED", 3600)  # final: neither
            stuck_key_tx = await _tx(conn, "COMPLETED", 7200)
            await conn.execute(
                """INSERT INTO idempotency_keys (id, key, scope, request_hash, status, transaction_id, created_at,
                                                 expires_at)
                   VALUES ($1, 'k', 'rgs', 'h', 'PROCESSING', $2, now() - interval '2 hours',
                           now() + interval '1 day')""",
                uuid.uuid4(),
                stuck_key_tx,
            )
            for status in ("DEAD_LETTER", "DEAD_LETTER", "DELIVERED"):
                await conn.execute(
                    """INSERT INTO webhook_outbox (id, client_id, event_type, payload, status)
                       VALUES ($1, 'rgs', 'transaction.completed', '{}'::jsonb, $2)""",
                    uuid.uuid4(),
                    status,
                )

        await gauges.refresh(pool, stuck_after_s=300)
    finally:
        await pool.close()

    assert _value("hub_transactions_stuck") == 1
    assert _value("hub_transactions_long_running") == 2
    assert _value("hub_idempotency_keys_stuck") == 1
    assert _value("hub_webhook_outbox_rows", status="DEAD_LETTER") == 2
    assert _value("hub_webhook_outbox_rows", status="DELIVERED") == 1
    assert _value("hub_webhook_outbox_rows", status="FAILED") == 0
    transactions_bytes = _value("hub_table_size_bytes", table="transactions")
    assert transactions_bytes is not None and transactions_bytes > 0
