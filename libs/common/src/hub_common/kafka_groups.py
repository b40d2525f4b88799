"""Consumer groups seen from outside: their committed offsets and lag, and moving them back in time.

- `GroupLagWatcher` exports `hub_kafka_consumer_lag{group,topic}` for a group whose consumer is not our
  `KafkaConsumer` (the reconciler's faust agent), measured the same way: end offsets minus committed offsets.
- `groups_on`, `offsets_at` and `rewind` serve `hubctl recovery`: after PostgreSQL was restored from a backup, the
  groups whose work lives in the database read their topics again from the backup's time. A group's offsets are
  only moved while it has no member (Kafka itself refuses a commit from outside an active group), so a running
  service can never be rewound under its feet.
aiokafka exceptions become our own (`hub_common.kafka.translate`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from hub_common.errors import HubError
from hub_common.kafka import CONSUMER_LAG, translate
from hub_common.kafka_scan import partitions
from hub_common.settings import KafkaSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
# Group states in which nobody consumes (Kafka's names); any other state has members.
IDLE_STATES = frozenset({"Empty", "Dead"})


class GroupActiveError(HubError):
    """A consumer group still has members: its offsets cannot (and must not) be moved."""


@dataclass(frozen=True)
class GroupOffsets:
    """One group's committed offsets on some topics, and whether anybody consumes in it now."""

    group: str
    state: str
    members: tuple[str, ...]
    committed: dict[TopicPartition, int]

    @property
    def idle(self) -> bool:
        return self.state in IDLE_STATES


async def _admin(settings: KafkaSettings, work: Callable[[AIOKafkaAdminClient], Awaitable[T]]) -> T:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=settings.request_timeout_ms
    )
    try:
        await admin.start()
        return await work(admin)
    except KafkaError as exc:
        raise translate(exc) from exc
    finally:
        await admin.close()


def _describe(response: Any) -> tuple[str, tuple[str, ...]]:
    """(state, member client ids) from a DescribeGroups response (v0 and later share these fields' order)."""
    (group,) = response.groups
    state = group[2]
    members = tuple(str(member[2]) for member in group[5])
    return str(state), members


async def groups_on(settings: KafkaSettings, topics: Sequence[str]) -> list[GroupOffsets]:
    """Every consumer group with committed offsets on any of `topics` (full names), with its state."""
    wanted = set(topics)

    async def work(admin: AIOKafkaAdminClient) -> list[GroupOffsets]:
        found = []
        for group_id, _protocol in sorted(await admin.list_consumer_groups()):
            offsets = await admin.list_consumer_group_offsets(group_id)
            committed = {tp: meta.offset for tp, meta in offsets.items() if tp.topic in wanted and meta.offset >= 0}
            if not committed:
                continue
            (response,) = await admin.describe_consumer_groups([group_id])
            state, members = _describe(response)
            found.append(GroupOffsets(group_id, state, members, committed))
        return found

    return await _admin(settings, work)


async def offsets_at(settings: KafkaSettings, topics: Sequence[str], at_ms: int) -> dict[TopicPartition, int]:
    """For each partition of `topics`: the offset of its first record at or after `at_ms` (its end when none)."""
    tps = await partitions(settings, topics)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        request_timeout_ms=max(settings.request_timeout_ms, 40_000),
    )
    try:
        await consumer.start()
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        found = await consumer.offsets_for_times(dict.fromkeys(tps, at_ms))
        return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in tps}
    except KafkaError as exc:
        raise translate(exc) from exc
    finally:
        await consumer.stop()


async def rewind(settings: KafkaSettings, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit `offsets` for `group`, which must have no member (checked here, and enforced by Kafka)."""
    state, members = await _admin(settings, lambda admin: _state(admin, group))
    if state not in IDLE_STATES:
        raise GroupActiveError(
            f"consumer group {group} is {state} with members {', '.join(members) or '?'}: stop its service first"
        )
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        request_timeout_ms=max(settings.request_timeout_ms, 40_000),
    )
    try:
        await consumer.start()
        # Assigned, never subscribed: the commit is made from outside the group (generation -1), which Kafka only
        # accepts while the group is empty.
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(offset, "hubctl recovery") for tp, offset in offsets.items()})
    except KafkaError as exc:
        raise GroupActiveError(f"consumer group {group}: Kafka refused the rewind: {exc!r}") from exc
    finally:
        await consumer.stop()


async def _state(admin: AIOKafkaAdminClient, group: str) -> tuple[str, tuple[str, ...]]:
    (response,) = await admin.describe_consumer_groups([group])
    return _describe(response)


async def group_lag(settings: KafkaSettings, group: str, topics: Sequence[str]) -> dict[str, int]:
    """Lag of `group` per topic (full names): end offsets minus committed offsets; a partition the group never
    committed counts from its beginning (the group reads from the earliest record)."""
    tps = await partitions(settings, topics)
    if not tps:
        return {}
    committed = await _admin(settings, lambda admin: admin.list_consumer_group_offsets(group, partitions=tps))
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        request_timeout_ms=max(settings.request_timeout_ms, 40_000),
    )
    try:
        await consumer.start()
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
    except KafkaError as exc:
        raise translate(exc) from exc
    finally:
        await consumer.stop()
    lag: dict[str, int] = {}
    for tp in tps:
        meta = committed.get(tp)
        base = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
        lag[tp.topic] = lag.get(tp.topic, 0) + max(ends[tp] - base, 0)
    return lag


class GroupLagWatcher:
    """Measures `group`'s lag on `topics` (unprefixed names) every `settings.lag_interval_s` into
    `hub_kafka_consumer_lag`; its children exist from the start. `run()` is a background task's body."""

    def __init__(self, settings: KafkaSettings, group: str, topics: Sequence[str]) -> None:
        self._settings = settings
        self._group = group
        self._topics = [settings.topic(t) for t in topics]
        for topic in self._topics:
            CONSUMER_LAG.labels(group, topic)

    async def run(self) -> None:
        interval = self._settings.lag_interval_s
        if interval <= 0:
            return
        timeout_s = self._settings.request_timeout_ms / 1000 * 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with asyncio.timeout(timeout_s):
                    lags = await group_lag(self._settings, self._group, self._topics)
            except (HubError, OSError, TimeoutError) as exc:
                # A missed measurement leaves the last value; the lag alerts have a `for:` longer than this.
                log.debug("consumer lag not measured", extra={"group": self._group, "error": repr(exc)})
                continue
            for topic, lag in lags.items():
                CONSUMER_LAG.labels(self._group, topic).set(lag)
