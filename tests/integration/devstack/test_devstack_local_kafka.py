"""The jar-mode broker really starts, serves produce/consume, and is gone after the context exits.

Forced with mode="local" so it runs even where KAFKA_BOOTSTRAP_SERVERS points at another broker (~5-20 s).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from hub_common.envelope import wrap
from hub_common.kafka import TRANSACTIONS, KafkaConsumer, KafkaProducer, ensure_topics
from hub_common.schemas import Balance
from hub_common.settings import KafkaSettings
from hub_devstack.kafka import provide_kafka


def _accepts(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="module")
def local_broker() -> Iterator[str]:
    with provide_kafka("local") as bootstrap:
        yield bootstrap
    assert not _accepts(bootstrap), "the broker must be stopped when the context exits"


async def test_local_broker_serves_produce_and_consume(local_broker: str, kafka_bootstrap: str) -> None:
    assert local_broker != kafka_bootstrap  # really our own broker, not the session's
    settings = KafkaSettings(bootstrap_servers=local_broker, topic_prefix="devstack.", partitions=1)
    await ensure_topics(settings, [TRANSACTIONS])
    producer = KafkaProducer(settings, client_id="devstack-test")
    await producer.start()
    consumer = KafkaConsumer(
        settings, [TRANSACTIONS], group_id="devstack-test", dlq_producer=producer, client_id="devstack-test"
    )
    await consumer.start()
    try:
        env = wrap(Balance(player_id="p-1", balance_cents=42, currency="EUR"), correlation_id="c-local")
        await producer.send(TRANSACTIONS, env, key="p-1")
        got = []
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=500)
            got.extend(batch.records)
            await consumer.commit(batch.offsets)
            if got:
                break
        assert [r.envelope.payload_as(Balance).balance_cents for r in got] == [42]
        assert got[0].envelope.correlation_id == "c-local"
    finally:
        await consumer.stop()
        await producer.stop()
