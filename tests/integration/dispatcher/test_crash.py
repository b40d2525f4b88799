"""kill -9 of the dispatcher process mid-stream loses no webhook: every eventId reaches the RGS at least once.

Duplicates are allowed (at-least-once) but bounded. A row is claimed for an attempt before its POST and recorded
after the answer; a restarted dispatcher sends again only what a dead one had claimed and not recorded (the Kafka
record comes back, or the sweep takes the stale row; the claim lets one of them through). So every duplicate is
of a row the kill left claimed, at most once per such kill, and a kill leaves claimed at most what the consuming
loops hold: `max_in_flight` deliveries each (first attempts, and each retry tier). The endpoint's concurrency does
not bound it: a delivery whose POST was answered frees its endpoint slot before its row is recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest

from hub_common.kafka import TRANSACTIONS, KafkaProducer, ensure_topics
from hub_common.settings import DatabaseSettings, KafkaSettings
from mock_rgs.models import Behaviour
from support.dispatcher_it import DispatcherProcess, Rgs, dispatcher_settings, mock_rgs, publish, result_event
from support.waits import eventually

EVENTS = 300
CONCURRENCY = 3
# Twice the endpoint's concurrency: answered deliveries wait for their row write while others are sent.
MAX_IN_FLIGHT = 2 * CONCURRENCY
RETRY_SCHEDULE_MS = [200, 400]
KILLS_AT = (60, 180)


async def test_kill_9_twice_mid_stream_loses_no_event(
    kafka_settings: KafkaSettings,
    dispatcher_db: DatabaseSettings,
    database_url: str,
    tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> None:
    events = [result_event(player=f"p-{i % 7}") for i in range(EVENTS)]
    ids = {e.event_id for e in events}
    producer = KafkaProducer(kafka_settings, client_id="test-ledger")
    db = await asyncpg.connect(database_url)
    await producer.start()
    # The ledger publishes before the dispatcher ever ran: the topic is there (the ledger creates it).
    await ensure_topics(kafka_settings, [TRANSACTIONS])
    # Per kill: the rows the dead process left claimed, with the attempt each was claimed for.
    left: list[dict[str, int]] = []
    try:
        async with mock_rgs() as rgs:
            # Slow answers keep deliveries in flight, so each kill lands mid-stream.
            await rgs.admin.set_behaviour(Behaviour(delay_ms=40))
            settings = dispatcher_settings(
                kafka_settings,
                dispatcher_db,
                rgs.url,
                max_concurrency_per_endpoint=CONCURRENCY,
                max_in_flight=MAX_IN_FLIGHT,
                retry_schedule_ms=RETRY_SCHEDULE_MS,
                stale_processing_s=5,
            )
            process = DispatcherProcess(settings, tmp_path / "dispatcher.log")
            half = EVENTS // 2
            await publish(producer, *events[:half])
            try:
                await process.start()
                await _until_acknowledged(rgs, KILLS_AT[0])
                await process.kill()
                left.append(await _claimed(db))
                # More results arrive while the dispatcher is down.
                await publish(producer, *events[half:])
                await process.start()
                # What the first kill left is sent again (or found recorded) before the second kill, so that
                # every row claimed at the second kill is held by one of the new process's deliveries.
                await eventually(lambda: _none_claimed(db, left[0]), what="the first kill's rows recorded")
                await _until_acknowledged(rgs, KILLS_AT[1])
                await process.kill()
                left.append(await _claimed(db))
                await process.start()
                await _until_acknowledged(rgs, EVENTS, timeout_s=90)
                await eventually(lambda: _delivered(db, EVENTS), what="every row DELIVERED")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- dispatcher log ---\n{process.tail()}") from exc
            finally:
                await process.stop()
            seen = await rgs.admin.webhooks()
    finally:
        await producer.stop()
        await db.close()

    acknowledged = [d.event_id for d in seen.received if d.verified and 200 <= d.status < 300]
    duplicated = Counter(acknowledged) - Counter(set(acknowledged))
    record_property("webhook_duplicates", seen.duplicates)
    print(
        f"kill -9 x{len(KILLS_AT)}: {EVENTS} events, {seen.duplicates} duplicate deliveries; "
        f"rows left claimed per kill: {[len(rows) for rows in left]}"
    )
    assert set(acknowledged) == ids
    assert seen.acknowledged_events == EVENTS
    assert seen.invalid_signatures == 0
    assert all(d.headers.get("traceparent", "").startswith("00-") for d in seen.received)
    # Each duplicate is a row a kill left claimed, sent again at most once per such kill...
    assert sum(duplicated.values()) == seen.duplicates
    for event_id, extra in duplicated.items():
        assert extra <= sum(event_id in rows for rows in left), f"{event_id} sent again though it was recorded"
    # ...and a kill leaves claimed at most `max_in_flight` rows per consuming loop: the first attempts' and each
    # retry tier's (a row claimed for attempt n + 1 has retry_count n and belongs to tier n).
    for rows in left:
        per_loop = Counter(rows.values())
        assert set(per_loop) <= set(range(len(RETRY_SCHEDULE_MS) + 1)), per_loop
        assert max(per_loop.values(), default=0) <= MAX_IN_FLIGHT, per_loop
    assert seen.duplicates <= len(KILLS_AT) * MAX_IN_FLIGHT * (1 + len(RETRY_SCHEDULE_MS))


async def _until_acknowledged(rgs: Rgs, count: int, *, timeout_s: float = 60) -> None:
    async def enough() -> bool:
        return (await rgs.admin.webhooks()).acknowledged_events >= count

    await eventually(enough, timeout_s=timeout_s, what=f"{count} acknowledged webhooks")


async def _claimed(db: asyncpg.Connection) -> dict[str, int]:
    """Rows claimed for an attempt and not recorded, by eventId with their retry_count. Read once the process is
    dead: a write it sent just before may still commit, which only shrinks what is really left."""
    rows = await db.fetch("SELECT id::text AS id, retry_count FROM webhook_outbox WHERE status = 'PROCESSING'")
    return {r["id"]: r["retry_count"] for r in rows}


async def _none_claimed(db: asyncpg.Connection, rows: dict[str, int]) -> bool:
    still: int = await db.fetchval(
        "SELECT count(*) FROM webhook_outbox WHERE id = ANY($1::uuid[]) AND status = 'PROCESSING'", list(rows)
    )
    return still == 0


async def _delivered(db: asyncpg.Connection, count: int) -> bool:
    done: int = await db.fetchval("SELECT count(*) FROM webhook_outbox WHERE status = 'DELIVERED'")
    return done == count


pytestmark = pytest.mark.timeout(180)
