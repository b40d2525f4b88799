"""The reconciler's tables: the operator feed's records and position (migration 004)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson

from hub_common import db
from hub_common.operator import OperatorRecord

# A later read of a record wins; a replayed older one (the join consuming operator.transactions) never does.
_UPSERT = """
INSERT INTO operator_transactions (transaction_id, operator_transaction_id, player_id, type, amount_cents, currency,
                                   status, original_transaction_id, created_at, seen_at, record)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
                     $8::text[], $9::timestamptz[], $10::timestamptz[], $11::jsonb[])
ON CONFLICT (transaction_id) DO UPDATE SET
    operator_transaction_id = excluded.operator_transaction_id, player_id = excluded.player_id,
    type = excluded.type, amount_cents = excluded.amount_cents, currency = excluded.currency,
    status = excluded.status, original_transaction_id = excluded.original_transaction_id,
    created_at = excluded.created_at, seen_at = excluded.seen_at, record = excluded.record
WHERE operator_transactions.seen_at <= excluded.seen_at
"""


async def upsert_records(
    conn: db.Connection | asyncpg.Pool, records: Sequence[tuple[OperatorRecord, datetime]]
) -> None:
    """Store operator records read at the given times (idempotent by transactionId)."""
    if not records:
        return
    # One row per id (a page never repeats one, a batch of the join may): the latest read wins.
    latest: dict[str, tuple[OperatorRecord, datetime]] = {}
    for record, seen in records:
        kept = latest.get(record.transaction_id)
        if kept is None or kept[1] <= seen:
            latest[record.transaction_id] = (record, seen)
    rows = list(latest.values())
    await conn.execute(
        _UPSERT,
        [r.transaction_id for r, _ in rows],
        [r.operator_transaction_id for r, _ in rows],
        [r.player_id for r, _ in rows],
        [r.type for r, _ in rows],
        [r.amount_cents for r, _ in rows],
        [r.currency for r, _ in rows],
        [r.status for r, _ in rows],
        [r.original_transaction_id for r, _ in rows],
        [r.created_at or seen for r, seen in rows],
        [seen for _, seen in rows],
        [orjson.dumps(r.to_wire()).decode() for r, _ in rows],
    )


@dataclass(frozen=True)
class FeedState:
    window_from: datetime
    window_to: datetime
    cursor: str | None
    covered_to: datetime


async def load_feed_state(conn: db.Connection | asyncpg.Pool, name: str) -> FeedState | None:
    row = await conn.fetchrow(
        "SELECT window_from, window_to, cursor, covered_to FROM operator_feed_state WHERE name = $1", name
    )
    return FeedState(*row) if row is not None else None


async def save_feed_state(conn: db.Connection, name: str, state: FeedState) -> None:
    await conn.execute(
        """INSERT INTO operator_feed_state (name, window_from, window_to, cursor, covered_to, updated_at)
           VALUES ($1, $2, $3, $4, $5, now())
           ON CONFLICT (name) DO UPDATE SET window_from = $2, window_to = $3, cursor = $4, covered_to = $5,
                                            updated_at = now()""",
        name,
        state.window_from,
        state.window_to,
        state.cursor,
        state.covered_to,
    )


async def purge_operator_records(pool: asyncpg.Pool, older_than: datetime, *, batch: int = 10_000) -> int:
    """Delete records created before `older_than`, a batch per statement (no long lock, no huge WAL burst)."""
    total = 0
    while True:
        status = await pool.execute(
            """DELETE FROM operator_transactions WHERE transaction_id IN (
                   SELECT transaction_id FROM operator_transactions WHERE created_at < $1 LIMIT $2)""",
            older_than,
            batch,
        )
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch:
            return total
