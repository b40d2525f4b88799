"""The multi-row statements of `OutboxStore` against the real database: which rows a batch claims, and
that one statement updates every row of it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
import pytest

from hub_common.operator import operator_id
from hub_common.schemas import Attempt, Outcome
from hub_dispatcher.store import Claim, Finished, NewRow, OutboxStore


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert created is not None
    yield created
    await created.close()


def new_row(transaction_id: str | None = None) -> NewRow:
    event_id = str(uuid.uuid4())
    return NewRow(
        event_id=event_id,
        transaction_id=transaction_id or str(uuid.uuid4()),
        client_id="rgs-demo",
        event_type="transaction.completed",
        payload=orjson.dumps({"eventId": event_id}).decode(),
        correlation_id=f"corr-{event_id[:8]}",
    )


def attempt(n: int, status: int, outcome: Outcome) -> Attempt:
    error = None if status < 300 else f"HTTP {status}"
    return Attempt(attempt=n, at=datetime.now(UTC), status=status, latency_ms=1.5, error=error, outcome=outcome)


async def test_new_rows_are_created_claimed_and_linked_to_their_transaction(pool: asyncpg.Pool) -> None:
    store = OutboxStore(pool)
    tx_id = str(uuid.uuid4())
    await pool.execute(
        """INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, request_hash,
                                     operator_id)
           VALUES ($1::uuid, 'rgs-demo', 'ref-1', 'BET', 'p-1', 100, 'EUR', 'h', $2)""",
        tx_id,
        operator_id("rgs-demo", "ref-1"),
    )
    linked, orphan = new_row(tx_id), new_row()

    assert await store.claim_new([linked, orphan]) == [True, True]

    rows = {
        r["id"]: r
        for r in await pool.fetch(
            "SELECT id::text AS id, transaction_id::text AS tx, status, payload FROM webhook_outbox"
        )
    }
    assert rows[linked.event_id]["tx"] == tx_id
    assert rows[orphan.event_id]["tx"] is None
    assert {r["status"] for r in rows.values()} == {"PROCESSING"}
    assert orjson.loads(rows[linked.event_id]["payload"]) == {"eventId": linked.event_id}


async def test_a_redelivered_event_is_claimed_again_only_while_its_first_attempt_is_not_done(
    pool: asyncpg.Pool,
) -> None:
    store = OutboxStore(pool)
    unfinished, delivered, failed = new_row(), new_row(), new_row()
    await store.claim_new([unfinished, delivered, failed])
    await store.mark_delivered([Finished(delivered.event_id, attempt(1, 200, Outcome.DELIVERED))])
    due = datetime.now(UTC) + timedelta(seconds=5)
    await store.mark_failed([Finished(failed.event_id, attempt(1, 500, Outcome.RETRY), next_retry_at=due)])
    fresh = new_row()

    # The same event twice in one batch: only its first occurrence may claim.
    claimed = await store.claim_new([unfinished, delivered, failed, fresh, fresh])

    assert claimed == [True, False, False, True, False]
    assert await pool.fetchval("SELECT count(*) FROM webhook_outbox") == 4


async def test_one_statement_marks_many_rows_and_appends_each_attempt(pool: asyncpg.Pool) -> None:
    store = OutboxStore(pool)
    rows = [new_row() for _ in range(4)]
    await store.claim_new(rows)
    due = datetime.now(UTC) + timedelta(minutes=5)

    await store.mark_delivered([Finished(r.event_id, attempt(1, 200, Outcome.DELIVERED)) for r in rows[:2]])
    await store.mark_failed([Finished(r.event_id, attempt(1, 503, Outcome.RETRY), next_retry_at=due) for r in rows[2:]])

    found = {
        r["id"]: r
        for r in await pool.fetch(
            """SELECT id::text AS id, status, retry_count, next_retry_at, last_error, delivered_at, attempts
               FROM webhook_outbox"""
        )
    }
    for row in rows[:2]:
        done = found[row.event_id]
        assert (done["status"], done["retry_count"], done["last_error"]) == ("DELIVERED", 0, None)
        assert done["delivered_at"] is not None
        assert [a["status"] for a in orjson.loads(done["attempts"])] == [200]
    for row in rows[2:]:
        failed = found[row.event_id]
        assert (failed["status"], failed["retry_count"], failed["last_error"]) == ("FAILED", 1, "HTTP 503")
        assert failed["next_retry_at"] == due
        assert [a["outcome"] for a in orjson.loads(failed["attempts"])] == ["retry"]


async def test_retry_claims_take_only_rows_waiting_for_that_attempt(pool: asyncpg.Pool) -> None:
    store = OutboxStore(pool)
    waiting, stale = new_row(), new_row()
    await store.claim_new([waiting, stale])
    due = datetime.now(UTC)
    await store.mark_failed(
        [Finished(r.event_id, attempt(1, 500, Outcome.RETRY), next_retry_at=due) for r in (waiting, stale)]
    )

    taken = await store.claim(
        [Claim(waiting.event_id, 2), Claim(stale.event_id, 3), Claim(waiting.event_id, 2), Claim(str(uuid.uuid4()), 2)]
    )

    assert [row.id if row else None for row in taken] == [waiting.event_id, None, None, None]
    assert taken[0] is not None
    assert (taken[0].status, taken[0].retry_count, taken[0].client_id) == ("PROCESSING", 1, "rgs-demo")
    assert taken[0].payload == {"eventId": waiting.event_id}
    # A row left PROCESSING (its attempt's process died) is claimable again by the record coming back.
    assert await store.claim([Claim(waiting.event_id, 2)]) == [taken[0]]
