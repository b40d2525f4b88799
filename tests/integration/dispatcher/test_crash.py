"""kill -9 of the dispatcher process mid-stream loses no webhook: every eventId reaches the RGS at least once.

Duplicates are allowed (at-least-once) but bounded: only a delivery the RGS acknowledged while the process died
before recording it is sent again, so at most the in-flight deliveries of each kill.
"""

from __future__ import annotations

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
    try:
        async with mock_rgs() as rgs:
            # Slow answers keep deliveries in flight, so each kill lands mid-stream.
            await rgs.admin.set_behaviour(Behaviour(delay_ms=40))
            settings = dispatcher_settings(
                kafka_settings,
                dispatcher_db,
                rgs.url,
                max_concurrency_per_endpoint=CONCURRENCY,
                retry_schedule_ms=[200, 400],
                stale_processing_s=5,
            )
            process = DispatcherProcess(settings, tmp_path / "dispatcher.log")
            half = EVENTS // 2
            await publish(producer, *events[:half])
            try:
                await process.start()
                await _until_acknowledged(rgs, KILLS_AT[0])
                await process.kill()
                # More results arrive while the dispatcher is down.
                await publish(producer, *events[half:])
                await process.start()
                await _until_acknowledged(rgs, KILLS_AT[1])
                await process.kill()
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

    acknowledged = {d.event_id for d in seen.received if d.verified and d.status == 200}
    record_property("webhook_duplicates", seen.duplicates)
    print(f"kill -9 x{len(KILLS_AT)}: {EVENTS} events, {seen.duplicates} duplicate deliveries")
    assert acknowledged == ids
    assert seen.acknowledged_events == EVENTS
    assert seen.invalid_signatures == 0
    assert seen.duplicates <= CONCURRENCY * len(KILLS_AT)
    assert all(d.headers.get("traceparent", "").startswith("00-") for d in seen.received)


async def _until_acknowledged(rgs: Rgs, count: int, *, timeout_s: float = 60) -> None:
    async def enough() -> bool:
        return (await rgs.admin.webhooks()).acknowledged_events >= count

    await eventually(enough, timeout_s=timeout_s, what=f"{count} acknowledged webhooks")


async def _delivered(db: asyncpg.Connection, count: int) -> bool:
    done: int = await db.fetchval("SELECT count(*) FROM webhook_outbox WHERE status = 'DELIVERED'")
    return done == count


pytestmark = pytest.mark.timeout(180)
