"""Group commit of admissions (store.py): concurrent admissions share one database transaction and one produce,
and each still gets the answer a lone admission would get.

The store runs on the gateway's own role and admission pool; each admission's command here is a coroutine
function standing for its Kafka produce (the app's tests cover the real one), so a produce failure can hit some
commands of a batch and not others.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime

import pytest

from hub_common.errors import KafkaUnavailableError
from hub_common.schemas import TransactionRequest
from hub_gateway.store import (
    ADMISSION_BATCH_SIZE,
    Admission,
    StoredTransaction,
    TransactionStore,
    create_admission_pool,
)
from support.gateway_it import CLIENT_ID, table_counts
from support.roles import RoleDbSettings

Publish = Callable[[], Awaitable[None]]
Store = TransactionStore[Publish]


async def publish_each(commands: Sequence[Publish]) -> list[Exception | None]:
    """The batch's produce: each command's own fate."""
    results = await asyncio.gather(*(command() for command in commands), return_exceptions=True)
    return [r if isinstance(r, Exception) else None for r in results]


@pytest.fixture
async def store(role_db_settings: RoleDbSettings) -> AsyncIterator[Store]:
    pool = await create_admission_pool(role_db_settings("gateway"), size=3, lock_timeout_ms=250)
    admissions: Store = TransactionStore(
        pool, publish_each, retry_after_s=1, key_ttl_s=3600, max_batch=100, batches_in_flight=1
    )
    try:
        yield admissions
    finally:
        await admissions.close()
        await pool.close()


def admission(ref_id: str, key: str) -> Admission:
    request = TransactionRequest.model_validate(
        {"refId": ref_id, "type": "BET", "playerId": "p-1", "amountCents": 250, "currency": "EUR"}
    )
    return Admission(
        transaction_id=uuid.uuid4(),
        client_id=CLIENT_ID,
        idempotency_key=key,
        request=request,
        request_hash=f"hash-{ref_id}",
        correlation_id=f"c-{ref_id}",
        admitted_at=datetime.now(UTC),
    )


async def acked() -> None:
    """Kafka acknowledged the command."""


async def refused() -> None:
    raise KafkaUnavailableError("Kafka request failed: broker down")


def batches() -> tuple[float, float]:
    """(batches written, admissions in them) so far."""
    samples = {s.name: s.value for metric in ADMISSION_BATCH_SIZE.collect() for s in metric.samples}
    return samples["gateway_admission_batch_size_count"], samples["gateway_admission_batch_size_sum"]


async def admit_together(
    store: Store, work: Sequence[tuple[Admission, Publish]]
) -> list[StoredTransaction | BaseException | None]:
    """Submitted in one go: they queue before the group commit's batch starts, so they share it."""
    return await asyncio.gather(*(store.admit(a, publish) for a, publish in work), return_exceptions=True)


async def test_concurrent_admissions_share_one_batch(store: Store, database_url: str) -> None:
    before = batches()
    work = [(admission(f"bet-{i}", f"k-{i}"), acked) for i in range(20)]
    results = await admit_together(store, work)
    after = batches()
    assert after == (before[0] + 1, before[1] + 20)
    assert [r.transaction.ref_id for r in results if isinstance(r, StoredTransaction)] == [
        f"bet-{i}" for i in range(20)
    ]
    assert await table_counts(database_url) == {"transactions": 20, "idempotency_keys": 20, "audit_log": 20}


async def test_a_produce_failing_for_some_admits_only_the_acknowledged(store: Store, database_url: str) -> None:
    work = [
        (admission("bet-1", "k-1"), acked),
        (admission("bet-2", "k-2"), refused),
        (admission("bet-3", "k-3"), acked),
    ]
    first, second, third = await admit_together(store, work)
    # The acknowledged commands exist in Kafka: their rows were written again after the batch rolled back.
    assert isinstance(first, StoredTransaction) and first.transaction.ref_id == "bet-1"
    assert isinstance(third, StoredTransaction) and third.transaction.ref_id == "bet-3"
    assert isinstance(second, KafkaUnavailableError)
    assert await table_counts(database_url) == {"transactions": 2, "idempotency_keys": 2, "audit_log": 2}


async def test_a_produce_failing_for_all_admits_none(store: Store, database_url: str) -> None:
    work = [(admission(f"bet-{i}", f"k-{i}"), refused) for i in range(3)]
    results = await admit_together(store, work)
    assert all(isinstance(r, KafkaUnavailableError) for r in results)
    assert await table_counts(database_url) == {"transactions": 0, "idempotency_keys": 0, "audit_log": 0}


async def test_a_key_taken_within_the_batch_splits_it(store: Store, database_url: str) -> None:
    # One key, two refIds: the second row would land without its key, so the batch is written one by one.
    before = batches()
    first, second = await admit_together(
        store, [(admission("bet-1", "k-1"), acked), (admission("bet-2", "k-1"), acked)]
    )
    after = batches()
    assert isinstance(first, StoredTransaction) and first.transaction.ref_id == "bet-1"
    assert second is None  # taken: the service then answers IDEMPOTENCY_KEY_REUSED from the stored row
    assert after == (before[0] + 3, before[1] + 4)  # the batch of 2, then each alone
    assert await table_counts(database_url) == {"transactions": 1, "idempotency_keys": 1, "audit_log": 1}


async def test_duplicates_within_a_batch_write_one(store: Store, database_url: str) -> None:
    results = await admit_together(store, [(admission("bet-1", "k-1"), acked) for _ in range(3)])
    assert sum(isinstance(r, StoredTransaction) for r in results) == 1
    assert results.count(None) == 2
    assert await table_counts(database_url) == {"transactions": 1, "idempotency_keys": 1, "audit_log": 1}
