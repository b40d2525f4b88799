"""The ledger's final write: the row read without a lock, then one statement that locks it, checks the lease
token under the lock and writes the row, its key, audit row and event (`hub_ledger.store.Store.finish`)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import orjson
import pytest

from hub_common import db, transitions
from hub_common.schemas import TxStatus, TxType
from hub_common.transactions import TxRow
from hub_common.transitions import Finish
from hub_ledger.store import Store
from support.ledger_it import Harness, command, insert_admitted
from support.roles import RoleDbSettings

COMPLETED = Finish(TxStatus.COMPLETED, "applied by the operator", balance_cents=9_000, operator_transaction_id="op-1")


@pytest.fixture
async def ledger_pool(role_db_settings: RoleDbSettings) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(role_db_settings("ledger"), reset_session=False)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def store(ledger_pool: asyncpg.Pool) -> AsyncIterator[Store]:
    store = Store(ledger_pool, lease_owner="it-ledger", lease_s=30.0)
    try:
        yield store
    finally:
        await store.close()


async def _held(harness: Harness, store: Store, ref_id: str) -> TxRow:
    """A BET made PROCESSING by the ledger's begin step: this process holds its lease."""
    cmd = command(ref_id, TxType.BET, "p-1", 1_000)
    await insert_admitted(harness.pool, cmd)
    begun = await store.begin(uuid.UUID(cmd.transaction_id))
    assert begun.row.status is TxStatus.PROCESSING
    return begun.row


async def _final_events(harness: Harness, tx_id: uuid.UUID) -> list[dict[str, object]]:
    values = await harness.pool.fetch(
        "SELECT value FROM event_outbox WHERE key = (SELECT ref_id FROM transactions WHERE id = $1)", tx_id
    )
    payloads = [orjson.loads(v["value"])["payload"] for v in values]
    return [p["transaction"] for p in payloads if p["transaction"]["status"] not in ("PENDING", "PROCESSING")]


async def _actions(harness: Harness, tx_id: uuid.UUID) -> list[str]:
    rows = await harness.pool.fetch("SELECT action FROM audit_log WHERE entity_id = $1 ORDER BY id", str(tx_id))
    return [r["action"] for r in rows]


async def test_the_holder_finishes_and_the_event_tells_the_rows_own_completion_time(
    harness: Harness, store: Store
) -> None:
    tx = await _held(harness, store, "bet-finish-1")

    done = await store.finish(tx.id, COMPLETED, tx.lease_token)

    assert done is not None and done.status is TxStatus.COMPLETED
    row = await harness.row("bet-finish-1")
    assert (row["status"], row["balance_cents"], row["lease_expires_at"]) == ("COMPLETED", 9_000, None)
    assert row["completed_at"] == row["updated_at"] == done.completed_at
    [event] = await _final_events(harness, tx.id)
    assert (
        event["completedAt"]
        == event["updatedAt"]
        == done.resource().model_dump(mode="json", by_alias=True)["completedAt"]
    )
    key = await harness.pool.fetchval("SELECT status FROM idempotency_keys WHERE transaction_id = $1", tx.id)
    assert key == "COMPLETED"
    assert await _actions(harness, tx.id) == ["processing", "completed"]


async def test_a_lease_taken_over_after_the_unlocked_read_fences_the_write(
    harness: Harness, store: Store, ledger_pool: asyncpg.Pool
) -> None:
    tx = await _held(harness, store, "bet-finish-2")
    read = await ledger_pool.fetchrow(transitions.READ_BY_IDS.replace("= ANY($1::uuid[])", "= $1"), tx.id)
    assert read is not None
    # An SRE's takeover (`hubctl tx resolve` after the lease ran out) between the read and the write.
    await harness.pool.execute("UPDATE transactions SET lease_token = lease_token + 1 WHERE id = $1", tx.id)

    async with ledger_pool.acquire() as conn:
        result = await transitions.finish_many(
            conn, [(TxRow.from_record(read), COMPLETED, tx.lease_token)], read["tx_now"], actor="ledger"
        )

    assert result == {tx.id: None}
    assert (await harness.row("bet-finish-2"))["status"] == "PROCESSING"
    assert await _final_events(harness, tx.id) == []
    assert await _actions(harness, tx.id) == ["processing"]


async def test_the_write_waits_for_a_row_lock_and_checks_the_token_after_it(harness: Harness, store: Store) -> None:
    tx = await _held(harness, store, "bet-finish-3")
    async with harness.pool.acquire() as other, other.transaction():
        await other.execute("SELECT 1 FROM transactions WHERE id = $1 FOR UPDATE", tx.id)
        finishing = asyncio.create_task(store.finish(tx.id, COMPLETED, tx.lease_token))
        await asyncio.sleep(0.3)
        assert not finishing.done()  # waiting for the row lock
        await other.execute("UPDATE transactions SET lease_token = lease_token + 1 WHERE id = $1", tx.id)

    assert await finishing is None
    assert (await harness.row("bet-finish-3"))["status"] == "PROCESSING"
    assert await _final_events(harness, tx.id) == []
