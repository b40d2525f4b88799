"""The outbox relay: one leader across replicas, woken by commits (its own, a follower's NOTIFY, hubctl's) rather
than by its poll, and a follower taking over when the leader goes.

The relays poll every 300 s here, far beyond the test's time: an event published within the test was published
because a commit announced it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from functools import partial

import asyncpg
import pytest

from hub_common import db
from hub_common.kafka import TRANSACTIONS, KafkaProducer, ensure_topics
from hub_common.settings import KafkaSettings
from hub_common.transitions import announce_events
from hub_ledger.outbox import OutboxRelay
from support.gateway_it import read_topic
from support.roles import RoleDbSettings
from support.waits import eventually

NEVER_S = 300.0


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaProducer]:
    await ensure_topics(kafka_settings, [TRANSACTIONS])
    events = KafkaProducer(kafka_settings, client_id="it-relay", linger_ms=0)
    await events.start()
    try:
        yield events
    finally:
        await events.stop()


@pytest.fixture
def make_relay(role_db_settings: RoleDbSettings, producer: KafkaProducer) -> Callable[..., OutboxRelay]:
    def make(poll_s: float = NEVER_S) -> OutboxRelay:
        return OutboxRelay(partial(db.connect, role_db_settings("ledger")), producer, poll_s=poll_s, batch=100)

    return make


@asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(relay.run())
    try:
        yield task
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task


async def queue_events(conn: asyncpg.Connection, values: list[str], *, announce: bool = False) -> None:
    """What transitions write: one `event_outbox` row per value, all of one refId (so one partition: their order
    on the topic is the order they were written in), in one transaction."""
    async with conn.transaction():
        for value in values:
            await conn.execute(
                "INSERT INTO event_outbox (event_id, topic, key, value) VALUES ($1, $2, 'ref-1', $3)",
                uuid.uuid4(),
                TRANSACTIONS,
                value.encode(),
            )
        if announce:
            await announce_events(conn)


async def unpublished(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM event_outbox WHERE published_at IS NULL"))


async def test_one_relay_leads_and_a_followers_commit_wakes_it(
    make_relay: Callable[..., OutboxRelay], kafka_settings: KafkaSettings, database_url: str
) -> None:
    leader, follower = make_relay(), make_relay()
    conn = await asyncpg.connect(database_url)
    try:
        async with running(leader):
            await eventually(lambda: leader.leading, what="the first relay leading")
            async with running(follower):
                await queue_events(conn, ["a", "b", "c"])
                # The follower's process committed them: it tells the leader (NOTIFY), it does not publish.
                follower.wake()
                await eventually(partial(_none_left, conn), what="the events published by the leader")
                assert not follower.leading
    finally:
        await conn.close()
    assert [r.value for r in await read_topic(kafka_settings, TRANSACTIONS)] == [b"a", b"b", b"c"]


async def _none_left(conn: asyncpg.Connection) -> bool:
    return await unpublished(conn) == 0


async def test_an_announced_commit_wakes_the_leader(
    make_relay: Callable[..., OutboxRelay], kafka_settings: KafkaSettings, database_url: str
) -> None:
    relay = make_relay()
    conn = await asyncpg.connect(database_url)
    try:
        async with running(relay):
            await eventually(lambda: relay.leading, what="the relay leading")
            # hubctl's transitions: written and announced in the same transaction, no ledger process involved.
            await queue_events(conn, ["x"], announce=True)
            await eventually(partial(_none_left, conn), what="the announced event published")
    finally:
        await conn.close()
    assert [r.value for r in await read_topic(kafka_settings, TRANSACTIONS)] == [b"x"]


async def test_a_follower_takes_over_when_the_leader_goes(
    make_relay: Callable[..., OutboxRelay], kafka_settings: KafkaSettings, database_url: str
) -> None:
    leader, follower = make_relay(), make_relay(poll_s=0.1)
    conn = await asyncpg.connect(database_url)
    leading = asyncio.create_task(leader.run())
    try:
        await eventually(lambda: leader.leading, what="the first relay leading")
        async with running(follower):
            # The follower tries the lock every 0.1 s: several tries, all refused while the leader holds it.
            await asyncio.sleep(0.5)
            assert not follower.leading
            leading.cancel()
            with suppress(asyncio.CancelledError):
                await leading
            # The leader is gone (its connection closed, its lock released): the follower leads.
            await eventually(lambda: follower.leading, what="the follower taking over")
            await queue_events(conn, ["after"])
            follower.wake()
            await eventually(partial(_none_left, conn), what="the event published by the new leader")
    finally:
        leading.cancel()
        with suppress(asyncio.CancelledError):
            await leading
        await conn.close()
    assert [r.value for r in await read_topic(kafka_settings, TRANSACTIONS)] == [b"after"]
