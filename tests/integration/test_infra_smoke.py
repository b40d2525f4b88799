from __future__ import annotations

import asyncpg
from aiokafka import AIOKafkaConsumer
from prometheus_client import REGISTRY

from hub_common.db import create_pool
from hub_common.envelope import wrap
from hub_common.kafka import TRANSACTIONS, KafkaConsumer, KafkaProducer, ensure_topics
from hub_common.schemas import Balance
from hub_common.settings import DatabaseSettings, KafkaSettings


async def test_migrated_database_has_runbook_tables(db_settings: DatabaseSettings) -> None:
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        names = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    finally:
        await conn.close()
    assert {"transactions", "idempotency_keys", "webhook_outbox", "audit_log", "schema_migrations"} <= names


async def test_produce_consume_roundtrip_and_poison_to_dlq(kafka_settings: KafkaSettings) -> None:
    await ensure_topics(kafka_settings, [TRANSACTIONS])
    producer = KafkaProducer(kafka_settings, client_id="smoke")
    await producer.start()
    consumer = KafkaConsumer(kafka_settings, [TRANSACTIONS], group_id="smoke", dlq_producer=producer, client_id="smoke")
    # The dead letter is not an envelope: read it raw.
    dlq = AIOKafkaConsumer(
        kafka_settings.topic(TRANSACTIONS + ".dlq"),
        bootstrap_servers=kafka_settings.bootstrap_servers,
        group_id="smoke-dlq",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    await dlq.start()
    try:
        await producer.send_raw(kafka_settings.topic(TRANSACTIONS), b"not json", key=b"k")
        env = wrap(Balance(player_id="p-1", balance_cents=5, currency="EUR"), correlation_id="c-1")
        await producer.send(TRANSACTIONS, env, key="p-1")
        got = []
        for _ in range(30):
            batch = await consumer.getmany(timeout_ms=500)
            got.extend(batch.records)
            await consumer.commit(batch.offsets)
            if got:
                break
        assert [r.envelope.payload_as(Balance).balance_cents for r in got] == [5]
        assert got[0].envelope.correlation_id == "c-1"
        assert dict(got[0].headers)["correlation-id"] == b"c-1"
        dead = []
        for _ in range(30):
            dead.extend((await dlq.getmany(timeout_ms=500)).values())
            if dead:
                break
        (msg,) = [m for msgs in dead for m in msgs]
        assert msg.value == b"not json"
        assert dict(msg.headers)["dlq-reason"].startswith(b"value is not JSON")
    finally:
        await consumer.stop()
        await dlq.stop()
        await producer.stop()


async def test_pool_gauge_counts_connections_in_use(db_settings: DatabaseSettings) -> None:
    def in_use() -> float | None:
        return REGISTRY.get_sample_value("hub_db_pool_connections", {"state": "in_use"})

    before = in_use() or 0
    pool = await create_pool(db_settings, size=2)
    try:
        async with pool.acquire():
            assert in_use() == before + 1
            assert (REGISTRY.get_sample_value("hub_db_pool_connections", {"state": "max"}) or 0) >= 2
    finally:
        await pool.close()
    assert in_use() == before
