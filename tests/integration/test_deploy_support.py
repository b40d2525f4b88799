"""What the Kubernetes deployment relies on, on the real broker and database: `hub-migrate --check` for the init
containers, services that run with topic creation off, the consumer-lag metric and the Kafka readiness probe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client import REGISTRY

from hub_common.db import main as hub_migrate
from hub_common.db import migrate
from hub_common.envelope import wrap
from hub_common.errors import FatalError
from hub_common.kafka import COMMANDS, KafkaConsumer, KafkaProbe, KafkaProducer, Record, ensure_topics
from hub_common.schemas import Balance
from hub_common.settings import KafkaSettings
from hub_devstack.postgres_roles import DatabaseRoles
from support.waits import eventually


@pytest.fixture
async def empty_database(db_roles: DatabaseRoles) -> AsyncIterator[str]:
    """An empty database owned by the owner role (migrating it also grants to the session's service roles)."""
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    url = await db_roles.create_database(name, migrated=False)
    try:
        yield url
    finally:
        await db_roles.drop_database(name)


async def _check(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    # main() runs its own event loop: keep it off this test's loop.
    code = await asyncio.to_thread(hub_migrate, ["--database-url", url, "--check"])
    out, err = capsys.readouterr()
    return code, out + err


async def test_migrate_check_reports_pending_then_current_then_changed(
    empty_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = await _check(empty_database, capsys)
    assert code == 1
    assert "pending: 001_core.sql" in output

    await migrate(empty_database)
    assert await _check(empty_database, capsys) == (0, "schema is current\n")

    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (999, '999_x.sql', 'x')")
    finally:
        await conn.close()
    code, output = await _check(empty_database, capsys)
    assert code == 2
    assert "001_core.sql" in output


async def test_migrate_check_accepts_a_schema_ahead_of_the_build(
    empty_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    await migrate(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES (999, '999_x.sql', 'x')")
    finally:
        await conn.close()
    code, output = await _check(empty_database, capsys)
    assert code == 0
    assert "[999]" in output


async def test_topic_creation_off_refuses_missing_topics_and_accepts_created_ones(
    kafka_settings: KafkaSettings,
) -> None:
    locked = kafka_settings.model_copy(update={"create_topics": False})
    with pytest.raises(FatalError) as refused:
        await ensure_topics(locked, [COMMANDS])
    assert kafka_settings.topic(COMMANDS) in refused.value.data["topics"]

    await ensure_topics(kafka_settings, [COMMANDS])
    assert await ensure_topics(locked, [COMMANDS]) == [kafka_settings.topic(COMMANDS)]

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_settings.bootstrap_servers)
    await admin.start()
    try:
        names = [kafka_settings.topic(COMMANDS), kafka_settings.topic(COMMANDS) + ".dlq"]
        described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    finally:
        await admin.close()
    retention = {
        resource[3]: {entry[0]: entry[1] for entry in resource[4]}["retention.ms"]
        for response in described
        for resource in response.resources
    }
    assert retention == {names[0]: str(7 * 86_400_000), names[1]: str(30 * 86_400_000)}


async def test_consumer_reports_its_group_lag(kafka_settings: KafkaSettings) -> None:
    settings = kafka_settings.model_copy(update={"lag_interval_s": 0.2})
    (topic,) = await ensure_topics(settings, [COMMANDS])
    group = f"lag-{uuid.uuid4().hex[:6]}"
    producer = KafkaProducer(settings, client_id="lag-test")
    await producer.start()
    consumer = KafkaConsumer(settings, [COMMANDS], group_id=group, dlq_producer=producer, client_id="lag-test")
    try:
        for n in range(5):
            env = wrap(Balance(player_id="p-1", balance_cents=n, currency="EUR"), correlation_id=f"c-{n}")
            await producer.send(COMMANDS, env, key="p-1")  # one key: one partition
        await consumer.start()
        records: list[Record] = []

        async def all_fetched() -> bool:
            records.extend((await consumer.getmany(timeout_ms=250)).records)
            return len(records) >= 5

        await eventually(all_fetched, what="the five records fetched")
        partition = records[0].partition
        await consumer.commit({TopicPartition(topic, partition): records[1].offset + 1})

        def lag() -> float | None:
            return REGISTRY.get_sample_value("hub_kafka_consumer_lag", {"group": group, "topic": topic})

        await eventually(lambda: lag() == 3, what="the group's lag measured after the commit")
        assert lag() == 3  # 5 produced, 2 committed; the records fetched but not committed still count
    finally:
        await consumer.stop()
        await producer.stop()


async def test_kafka_probe_keeps_one_client_and_reports_an_unreachable_cluster(kafka_settings: KafkaSettings) -> None:
    probe = KafkaProbe(kafka_settings)
    try:
        assert await probe.ping()
        first = probe._admin
        assert await probe.ping()
        assert probe._admin is first  # no new client per probe
    finally:
        await probe.close()

    nowhere = KafkaProbe(kafka_settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"}), timeout_s=1.0)
    try:
        assert not await nowhere.ping()
        assert nowhere._admin is None
    finally:
        await nowhere.close()
