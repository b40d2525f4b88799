"""Consumer groups from outside (hub_common.kafka_groups): offsets at a time, lag, and a rewind that Kafka only
accepts while the group has no member."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import REGISTRY

from hub_common.envelope import wrap
from hub_common.kafka import COMMANDS, KafkaConsumer, KafkaProducer, ensure_topics
from hub_common.kafka_groups import GroupActiveError, GroupLagWatcher, group_lag, groups_on, offsets_at, rewind
from hub_common.schemas import Balance
from hub_common.settings import KafkaSettings
from support.waits import eventually


def _lag(group: str, topic: str) -> float | None:
    return REGISTRY.get_sample_value("hub_kafka_consumer_lag", {"group": group, "topic": topic})


async def _send(producer: KafkaProducer, n: int, start: int) -> None:
    for i in range(start, start + n):
        env = wrap(Balance(player_id=f"p-{i}", balance_cents=i, currency="EUR"), correlation_id=f"c-{i}")
        await producer.send(COMMANDS, env, key=f"p-{i}")


async def _consume_all(consumer: KafkaConsumer, expected: int) -> int:
    seen = 0
    for _ in range(60):
        batch = await consumer.getmany(timeout_ms=500)
        seen += len(batch.records)
        await consumer.commit(batch.offsets)
        if seen >= expected:
            break
    return seen


async def test_rewind_to_a_time_replays_what_came_after_and_is_refused_while_consuming(
    kafka_settings: KafkaSettings,
) -> None:
    await ensure_topics(kafka_settings, [COMMANDS])
    topic = kafka_settings.topic(COMMANDS)
    group = kafka_settings.topic("hub-ledger")
    producer = KafkaProducer(kafka_settings, client_id="groups-test")
    await producer.start()
    try:
        await _send(producer, 5, 0)
        backup_ms = int(time.time() * 1000)
        await _send(producer, 7, 5)
        consumer = KafkaConsumer(kafka_settings, [COMMANDS], group_id=group, dlq_producer=producer, client_id="t")
        await consumer.start()
        try:
            assert await _consume_all(consumer, 12) == 12
            (found,) = [g for g in await groups_on(kafka_settings, [topic]) if g.group == group]
            assert not found.idle and found.members
            assert sum(found.committed.values()) == 12
            target = await offsets_at(kafka_settings, [topic], backup_ms)
            with pytest.raises(GroupActiveError, match="stop its service first"):
                await rewind(kafka_settings, group, target)
        finally:
            await consumer.stop()

        assert await group_lag(kafka_settings, group, [topic]) == {topic: 0}
        await rewind(kafka_settings, group, target)
        (found,) = [g for g in await groups_on(kafka_settings, [topic]) if g.group == group]
        assert found.idle and found.committed == target
        assert await group_lag(kafka_settings, group, [topic]) == {topic: 7}

        watcher = GroupLagWatcher(kafka_settings.model_copy(update={"lag_interval_s": 0.05}), group, [COMMANDS])
        assert _lag(group, topic) == 0  # the child exists before any measurement
        task = asyncio.create_task(watcher.run())
        try:
            await eventually(lambda: _lag(group, topic) == 7, timeout_s=30, what="the lag gauge at 7")
        finally:
            task.cancel()

        # The service starts again: it reads exactly the records after the backup's time.
        again = KafkaConsumer(kafka_settings, [COMMANDS], group_id=group, dlq_producer=producer, client_id="t")
        await again.start()
        try:
            replayed: list[int] = []
            for _ in range(60):
                batch = await again.getmany(timeout_ms=500)
                replayed.extend(r.envelope.payload_as(Balance).balance_cents for r in batch.records)
                if len(replayed) >= 7:
                    break
            assert sorted(replayed) == list(range(5, 12))
        finally:
            await again.stop()
    finally:
        await producer.stop()
