"""`KafkaProducer.send_each_raw`: a group's records produced together, each with its own fate."""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer

from hub_common.errors import KafkaUnavailableError
from hub_common.kafka import COMMANDS, KafkaProducer, RawRecord, ensure_topics
from hub_common.settings import KafkaSettings


async def test_each_record_gets_its_own_fate(kafka_settings: KafkaSettings) -> None:
    await ensure_topics(kafka_settings, [COMMANDS])
    topic = kafka_settings.topic(COMMANDS)
    producer = KafkaProducer(kafka_settings, client_id="send-each", idempotent=False, linger_ms=0)
    await producer.start()
    try:
        records = [
            RawRecord(topic, b"first", b"k", [("correlation-id", b"c-1")]),
            # Above the producer's request size: refused before it is sent, the others still go.
            RawRecord(topic, b"x" * 2_000_000, b"k", []),
            RawRecord(topic, b"third", b"k", []),
        ]
        first, too_large, third = await producer.send_each_raw(records, timeout_s=10)
    finally:
        await producer.stop()
    assert (first, third) == (None, None)
    assert isinstance(too_large, KafkaUnavailableError)

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_settings.bootstrap_servers, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    try:
        seen: list[bytes] = []
        for _ in range(30):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend(m.value for m in messages if m.value is not None)
            if len(seen) >= 2:
                break
    finally:
        await consumer.stop()
    # One key, one partition: the acknowledged records in the order given.
    assert seen == [b"first", b"third"]


async def test_an_empty_group_sends_nothing(kafka_settings: KafkaSettings) -> None:
    producer = KafkaProducer(kafka_settings, client_id="send-each-empty", idempotent=False, linger_ms=0)
    await producer.start()
    try:
        assert await producer.send_each_raw([], timeout_s=1) == []
    finally:
        await producer.stop()
