"""Bounded reads of topics for tools (hubctl `dlq`, `trace`): no consumer group, nothing committed.

A scan reads each partition from a start (its beginning, or the first record at or after a timestamp) up to the
end offset seen when the scan began, at most `max_per_partition` records each, and keeps the records a
predicate accepts. aiokafka exceptions become our own (`hub_common.kafka.translate`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from hub_common.kafka import admin_client, client_options, translate
from hub_common.settings import KafkaSettings
from hub_common.telemetry import KAFKA_CORRELATION_HEADER, header_value

T = TypeVar("T")


@dataclass(frozen=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int

    @property
    def correlation_id(self) -> str | None:
        return header_value(self.headers, KAFKA_CORRELATION_HEADER)


@dataclass
class Scan:
    records: list[RawRecord] = field(default_factory=list)
    # Records read per topic, and the topics whose bound stopped the read before their end.
    read: dict[str, int] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)


async def list_topics(settings: KafkaSettings) -> list[str]:
    """Every topic name the cluster has (full names, prefix included)."""
    return sorted(await _with_admin(settings, lambda admin: admin.list_topics()))


async def partitions(settings: KafkaSettings, topics: Sequence[str]) -> list[TopicPartition]:
    """The partitions of those of `topics` that exist."""

    async def describe(admin: AIOKafkaAdminClient) -> list[TopicPartition]:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t in existing]
        described = await admin.describe_topics(wanted) if wanted else []
        return [
            TopicPartition(d["topic"], p["partition"])
            for d in described
            if d["error_code"] == 0
            for p in sorted(d["partitions"], key=lambda p: int(p["partition"]))
        ]

    return await _with_admin(settings, describe)


async def _with_admin(settings: KafkaSettings, work: Callable[[AIOKafkaAdminClient], Awaitable[T]]) -> T:
    admin = admin_client(settings)
    try:
        await admin.start()
        return await work(admin)
    except KafkaError as exc:
        raise translate(exc) from exc
    finally:
        await admin.close()


async def scan(
    settings: KafkaSettings,
    topics: Sequence[str],
    *,
    keep: Callable[[RawRecord], bool] = lambda _: True,
    since_ms: int | None = None,
    max_per_partition: int | None = None,
) -> Scan:
    """Read `topics` (full names; missing ones are skipped) and return the records `keep` accepts."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        request_timeout_ms=max(settings.request_timeout_ms, 40_000),
    )
    result = Scan()
    tps = await partitions(settings, topics)
    try:
        await consumer.start()
        if tps:
            consumer.assign(tps)
            end = await consumer.end_offsets(tps)
            start = await _starts(consumer, tps, end, since_ms)
            stop = _stops(start, end, max_per_partition, result)
            for tp in tps:
                if start[tp] < stop[tp]:
                    consumer.seek(tp, start[tp])
            await _read(consumer, {tp for tp in tps if start[tp] < stop[tp]}, stop, keep, result)
    except KafkaError as exc:
        raise translate(exc) from exc
    finally:
        await consumer.stop()
    return result


def _stops(
    start: dict[TopicPartition, int], end: dict[TopicPartition, int], limit: int | None, result: Scan
) -> dict[TopicPartition, int]:
    stop = {}
    for tp, first in start.items():
        stop[tp] = end[tp]
        if limit is not None and end[tp] - first > limit:
            stop[tp] = first + limit
            result.truncated.add(tp.topic)
    return stop


async def _read(
    consumer: AIOKafkaConsumer,
    remaining: set[TopicPartition],
    stop: dict[TopicPartition, int],
    keep: Callable[[RawRecord], bool],
    result: Scan,
) -> None:
    while remaining:
        fetched = await consumer.getmany(*remaining, timeout_ms=1000)
        for tp, messages in fetched.items():
            for msg in messages:
                if msg.offset >= stop[tp]:
                    break
                result.read[tp.topic] = result.read.get(tp.topic, 0) + 1
                record = RawRecord(
                    topic=msg.topic,
                    partition=msg.partition,
                    offset=msg.offset,
                    key=msg.key.decode(errors="replace") if msg.key is not None else None,
                    value=msg.value,
                    headers=tuple(msg.headers or ()),
                    timestamp_ms=msg.timestamp,
                )
                if keep(record):
                    result.records.append(record)
        for tp in list(remaining):
            if await consumer.position(tp) >= stop[tp]:
                remaining.discard(tp)


async def _starts(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], end: dict[TopicPartition, int], since_ms: int | None
) -> dict[TopicPartition, int]:
    begin: dict[TopicPartition, int] = await consumer.beginning_offsets(tps)
    if since_ms is None:
        return begin
    found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
    # No record at or after the time: nothing to read on that partition.
    return {tp: found[tp].offset if found.get(tp) is not None else end[tp] for tp in tps}
