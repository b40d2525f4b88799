"""The operator feed poller against the mock operator, real PostgreSQL and Kafka: every record stored and
published, a restart resumes at the stored cursor (no page read twice), a 429 pauses the shared budget."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
from pydantic import SecretStr

from hub_common.kafka import OPERATOR_TRANSACTIONS, KafkaConsumer, KafkaProducer, ensure_topics
from hub_common.operator import Budget, OperatorClient, OperatorRecord, OperatorSettings
from hub_common.settings import KafkaSettings
from hub_reconciler.feed import FeedPolicy, FeedPoller
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.app import create_app as create_operator
from mock_operator.models import FaultConfig, RecordSeed
from mock_operator.settings import MockOperatorSettings
from support.apps import serve
from support.roles import RoleDbSettings
from support.waits import eventually

SECRET = SecretStr("feed-secret")
POLICY = FeedPolicy(
    name="operator", page_limit=2, poll_interval_s=30.0, delay_s=0.0, max_window_s=86_400, start_lookback_s=3_600
)


async def test_feed_stores_publishes_and_resumes(
    role_db_settings: RoleDbSettings, kafka_settings: KafkaSettings
) -> None:
    created = datetime.now(UTC) - timedelta(minutes=10)
    ids = [f"op-{i}" for i in range(5)]
    operator_settings = OperatorSettings(secret=SECRET, rate_per_minute=600)
    await ensure_topics(kafka_settings, [OPERATOR_TRANSACTIONS])
    # The reconciler's own role: the poller needs no more than the reconciler holds.
    pool = await asyncpg.create_pool(role_db_settings("reconciler").url.get_secret_value(), min_size=1, max_size=4)
    producer = KafkaProducer(kafka_settings, client_id="test")
    await producer.start()
    async with serve(create_operator(MockOperatorSettings(secret=SECRET))) as url, aiohttp.ClientSession() as http:
        admin = OperatorAdminClient(http, url)
        await admin.add_records(
            RecordSeed(transaction_id=i, amount_cents=100, currency="EUR", created_at=created) for i in ids
        )
        settings = operator_settings.model_copy(update={"url": url})
        client, budget = OperatorClient(settings, caller="reconciler"), Budget(pool, settings)
        try:
            assert await FeedPoller(pool, client, budget, producer, POLICY).step() is True
            assert await pool.fetchval("SELECT count(*) FROM operator_transactions") == 2
            # A new poller (a restart) goes on from the stored cursor.
            poller = FeedPoller(pool, client, budget, producer, POLICY)
            while await poller.step():
                pass
            pages = (await admin.stats()).by_endpoint
            stored = await pool.fetch("SELECT transaction_id, amount_cents, created_at FROM operator_transactions")
            state = await pool.fetchrow("SELECT cursor, covered_to FROM operator_feed_state WHERE name = 'operator'")

            await admin.set_faults(FaultConfig(force429=1, retry_after_s=7))
            await pool.execute("UPDATE operator_feed_state SET covered_to = covered_to - interval '1 hour'")
            # The pause is checked against when the 429 can have come (after this, before it is seen), not
            # against how soon a loaded machine looked at it.
            started: datetime = await pool.fetchval("SELECT clock_timestamp()")
            task = asyncio.create_task(poller.run())
            pause: list[asyncpg.Record] = []

            async def paused() -> bool:
                row = await pool.fetchrow(
                    """SELECT paused_until, clock_timestamp() AS seen FROM operator_budget
                       WHERE name = 'operator' AND paused_until IS NOT NULL"""
                )
                pause.extend([row] if row is not None else [])
                return bool(pause)

            await eventually(paused, what="the budget paused by the operator's Retry-After")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        finally:
            await client.close()
            await budget.close()
    consumer = KafkaConsumer(
        kafka_settings, [OPERATOR_TRANSACTIONS], group_id="test-feed", dlq_producer=producer, client_id="test"
    )
    await consumer.start()
    published: set[str] = set()
    try:

        async def all_published() -> bool:
            batch = await consumer.getmany(timeout_ms=250)
            published.update(r.envelope.payload_as(OperatorRecord).transaction_id for r in batch.records)
            return published >= set(ids)

        await eventually(all_published, what="every stored record on the topic")
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()
    assert sorted(r["transaction_id"] for r in stored) == ids
    assert {r["created_at"] for r in stored} == {created}
    assert state is not None and state["cursor"] is None and state["covered_to"] > created
    # Three pages of two, each read once, across the restart.
    assert sum(pages.values()) == 3, pages
    assert published == set(ids)
    paused_until, seen = pause[0]["paused_until"], pause[0]["seen"]
    assert started + timedelta(seconds=7) <= paused_until <= seen + timedelta(seconds=7)
