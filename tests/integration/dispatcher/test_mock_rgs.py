"""The dispatcher against the real mock-rgs (it verifies both signature families and counts duplicates), the
real broker and database; dead letters handled with hubctl as an SRE would."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from prometheus_client import REGISTRY

from hub_common.kafka import KafkaProducer
from hub_common.schemas import TxStatus
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_dispatcher.app import create_app
from hub_dispatcher.settings import DispatcherSettings
from hub_dispatcher.store import OutboxStore
from hubctl.context import HubctlSettings
from mock_rgs.models import Behaviour, Delivery
from support.apps import serve
from support.dispatcher_it import (
    CLIENT,
    Rgs,
    all_in,
    dispatcher_settings,
    mock_rgs,
    publish,
    result_event,
    run_hubctl,
    statuses,
)
from support.roles import RoleDbSettings
from support.waits import eventually


@pytest.fixture
async def rgs() -> AsyncIterator[Rgs]:
    async with mock_rgs() as running:
        yield running


@pytest.fixture
def settings(kafka_settings: KafkaSettings, dispatcher_db: DatabaseSettings, rgs: Rgs) -> DispatcherSettings:
    return dispatcher_settings(kafka_settings, dispatcher_db, rgs.url)


@pytest.fixture
def ctl(kafka_settings: KafkaSettings, role_db_settings: RoleDbSettings) -> HubctlSettings:
    return HubctlSettings(kafka=kafka_settings, database=role_db_settings("hubctl"), hubctl_actor="hubctl:sre-test")


def _sweeps() -> float:
    """Completed sweeps of the in-process dispatcher (a counter: tests compare it with an earlier value)."""
    return REGISTRY.get_sample_value("hub_webhook_sweeps_total", {"result": "ok"}) or 0.0


async def deliveries(rgs: Rgs, event_id: str) -> list[Delivery]:
    return (await rgs.admin.webhooks(event_id)).received


async def test_healthy_rgs_gets_each_event_once_verified(
    settings: DispatcherSettings, rgs: Rgs, ledger: KafkaProducer, db: asyncpg.Connection
) -> None:
    events = [result_event(status) for status in (TxStatus.COMPLETED, TxStatus.REJECTED, TxStatus.FAILED)]
    ids = [e.event_id for e in events]
    async with serve(create_app(settings)):
        await publish(ledger, *events)
        await eventually(lambda: all_in(db, "DELIVERED", *ids), what="three deliveries")

    seen = await rgs.admin.webhooks()
    assert (seen.unique_events, seen.acknowledged_events, seen.duplicates, seen.invalid_signatures) == (3, 3, 0, 0)
    assert sorted(d.event_id or "" for d in seen.received) == sorted(ids)
    assert all(d.verified and d.attempt == 1 and not d.replay for d in seen.received)
    types = {d.event_id: d.event_type for d in seen.received}
    assert [types[i] for i in ids] == ["transaction.completed", "transaction.rejected", "transaction.failed"]
    for delivery, sent in zip(sorted(seen.received, key=lambda d: ids.index(d.event_id or "")), events, strict=True):
        assert delivery.headers["X-Correlation-ID"] == sent.correlation_id
        assert delivery.headers["webhook-id"] == sent.event_id


async def test_retried_while_the_rgs_answers_500_then_delivered(
    settings: DispatcherSettings, rgs: Rgs, ledger: KafkaProducer, db: asyncpg.Connection
) -> None:
    await rgs.admin.set_behaviour(Behaviour(status=500, count=3))
    sent = result_event()
    async with serve(create_app(settings)):
        await publish(ledger, sent)
        await eventually(lambda: all_in(db, "DELIVERED", sent.event_id), what="delivery after retries")

    received = await deliveries(rgs, sent.event_id)
    assert [(d.attempt, d.status) for d in received] == [(1, 500), (2, 500), (3, 500), (4, 200)]
    assert all(d.verified and d.headers["webhook-id"] == sent.event_id for d in received)
    assert (await rgs.admin.webhooks()).duplicates == 0


async def test_dead_lettered_once_the_schedule_is_exhausted_and_at_once_on_400(
    settings: DispatcherSettings, rgs: Rgs, ledger: KafkaProducer, db: asyncpg.Connection, ctl: HubctlSettings
) -> None:
    await rgs.admin.set_behaviour(Behaviour(status=500))
    exhausted = result_event(player="p-exhausted")
    async with serve(create_app(settings)):
        await publish(ledger, exhausted)
        await eventually(lambda: all_in(db, "DEAD_LETTER", exhausted.event_id), what="exhausted dead letter")
        await rgs.admin.set_behaviour(Behaviour(status=400))
        refused = result_event(player="p-refused")
        await publish(ledger, refused)
        await eventually(lambda: all_in(db, "DEAD_LETTER", refused.event_id), what="400 dead letter")

    assert [d.attempt for d in await deliveries(rgs, exhausted.event_id)] == [1, 2, 3, 4]
    assert [(d.attempt, d.status) for d in await deliveries(rgs, refused.event_id)] == [(1, 400)]
    letters = await run_hubctl(ctl, "dlq", "list")
    by_id = {row["eventId"]: row for row in letters}
    assert by_id.keys() == {exhausted.event_id, refused.event_id}
    assert by_id[refused.event_id]["reason"] == "non-retryable HTTP 400"
    assert by_id[exhausted.event_id]["reason"].startswith("retries exhausted after 4 attempts")
    shown = await run_hubctl(ctl, "dlq", "show", exhausted.event_id)
    assert [(a["attempt"], a["status"], a["outcome"]) for a in shown["attempts"]] == [
        (1, 500, "retry"),
        (2, 500, "retry"),
        (3, 500, "retry"),
        (4, 500, "dead_letter"),
    ]
    assert all(a["latencyMs"] >= 0 and a["response"] and a["at"] for a in shown["attempts"])
    assert [r["eventId"] for r in await run_hubctl(ctl, "dlq", "list", "--player", "p-refused")] == [refused.event_id]
    assert [r["eventId"] for r in await run_hubctl(ctl, "dlq", "list", "--error", "EXHAUSTED")] == [exhausted.event_id]
    failed = await run_hubctl(ctl, "webhooks", "failed", "--error", "http 400")
    assert [r["id"] for r in failed] == [refused.event_id]


async def test_dlq_replay_by_time_range_sends_exactly_the_selected_events_freshly_signed(
    settings: DispatcherSettings, rgs: Rgs, ledger: KafkaProducer, db: asyncpg.Connection, ctl: HubctlSettings
) -> None:
    await rgs.admin.set_behaviour(Behaviour(status=400))
    before, inside, after = [result_event()], [result_event(), result_event(TxStatus.REJECTED)], [result_event()]
    windows: list[datetime] = []
    async with serve(create_app(settings)):
        for group in (before, inside, after):
            windows.append(datetime.now(UTC))
            await publish(ledger, *group)
            ids = [e.event_id for e in group]
            await eventually(lambda ids=ids: all_in(db, "DEAD_LETTER", *ids), what="dead letters")
            await asyncio.sleep(0.05)  # keeps the groups' dead-letter times apart
        windows.append(datetime.now(UTC))
        all_ids = [e.event_id for e in before + inside + after]

        async def listed() -> bool:
            return len(await run_hubctl(ctl, "dlq", "list")) == len(all_ids)

        await eventually(listed, what="dead letters on the topic")
        span = ["--from", windows[1].isoformat(), "--to", windows[2].isoformat()]
        dry = await run_hubctl(ctl, "dlq", "replay", *span, "--dry-run")
        assert {r["eventId"] for r in dry} == {e.event_id for e in inside}
        assert {r["result"] for r in dry} == {"would replay"}
        assert set((await statuses(db, *all_ids)).values()) == {"DEAD_LETTER"}

        await rgs.admin.clear_behaviour()
        replay_started = int(time.time())
        replayed = await run_hubctl(ctl, "dlq", "replay", *span, "--rate", "200", "--reason", "INC-42 fixed", "--yes")
        inside_ids = [e.event_id for e in inside]
        await eventually(lambda: all_in(db, "DELIVERED", *inside_ids), what="replayed deliveries")
        # Two more complete sweeps (the first may have started before the deliveries): nothing else may go out.
        swept = _sweeps()
        await eventually(lambda: _sweeps() >= swept + 2, what="two further sweeps")
        final = await statuses(db, *all_ids)

    assert {r["eventId"]: r["result"] for r in replayed} == {i: "replayed" for i in inside_ids}
    assert final == {**dict.fromkeys(all_ids, "DEAD_LETTER"), **dict.fromkeys(inside_ids, "DELIVERED")}
    replays = [d for d in (await rgs.admin.webhooks()).received if d.replay]
    assert sorted(d.event_id or "" for d in replays) == sorted(inside_ids)
    for delivery in replays:
        assert delivery.verified and delivery.status == 200
        assert delivery.headers["X-Replay"] == "true"
        assert delivery.attempt == 1
        assert delivery.headers["webhook-id"] == delivery.event_id
        assert int(delivery.headers["X-Timestamp"]) >= replay_started
        assert int(delivery.headers["webhook-timestamp"]) >= replay_started
    audit = await db.fetch(
        "SELECT entity_id, action, actor, reason, after::text AS after, at FROM audit_log ORDER BY id"
    )
    assert sorted(r["entity_id"] for r in audit) == sorted(inside_ids)
    assert {(r["action"], r["actor"], r["reason"]) for r in audit} == {
        ("dlq.replay", "hubctl:sre-test", "INC-42 fixed")
    }
    assert all(orjson.loads(r["after"])["request"]["since"] for r in audit)


async def test_redrive_republishes_from_the_database_when_the_topics_were_lost(
    settings: DispatcherSettings, rgs: Rgs, ledger: KafkaProducer, db: asyncpg.Connection, ctl: HubctlSettings
) -> None:
    # FAILED waits 10 min for a retry record that will be lost with the topics; PENDING was never attempted
    # (the dispatcher died right after inserting it); DEAD_LETTER needs a replay.
    slow = settings.model_copy(update={"retry_schedule_ms": [600_000, 600_000], "retry_jitter": 0.0})
    started = datetime.now(UTC).isoformat()
    await rgs.admin.set_behaviour(Behaviour(status=500, count=1))
    waiting = result_event(player="p-waiting")
    async with serve(create_app(slow)):
        await publish(ledger, waiting)
        await eventually(lambda: all_in(db, "FAILED", waiting.event_id), what="first attempt failed")
    never_tried, dead = str(uuid.uuid4()), str(uuid.uuid4())
    body = {"eventId": "x", "eventType": "transaction.completed", "data": {"playerId": "p-1"}}
    for event_id, status, retry_count in ((never_tried, "PENDING", 0), (dead, "DEAD_LETTER", 3)):
        await db.execute(
            """INSERT INTO webhook_outbox (id, client_id, event_type, payload, status, retry_count, correlation_id)
               VALUES ($1::uuid, $2, 'transaction.completed', $3::jsonb, $4, $5, 'corr-' || $1)""",
            event_id,
            CLIENT,
            orjson.dumps({**body, "eventId": event_id}).decode(),
            status,
            retry_count,
        )

    fresh_kafka = settings.kafka.model_copy(update={"topic_prefix": f"t{uuid.uuid4().hex[:10]}."})
    after_loss = slow.model_copy(update={"kafka": fresh_kafka})
    ids = [waiting.event_id, never_tried, dead]
    async with serve(create_app(after_loss)):
        ctl_after = ctl.model_copy(update={"kafka": fresh_kafka})
        dry = await run_hubctl(ctl_after, "webhooks", "redrive", "--from", started, "--dry-run")
        assert {r["id"] for r in dry} == {waiting.event_id, dead}  # default: FAILED and DEAD_LETTER
        every = ["--status", "PENDING", "--status", "FAILED", "--status", "DEAD_LETTER"]
        redriven = await run_hubctl(
            ctl_after, "webhooks", "redrive", "--from", started, *every, "--rate", "100", "--yes"
        )
        await eventually(lambda: all_in(db, "DELIVERED", *ids), what="redriven deliveries")

    assert {r["id"]: r["result"] for r in redriven} == {
        waiting.event_id: "republished attempt 2",
        never_tried: "republished attempt 1",
        dead: "reset",
    }
    last = {i: (await deliveries(rgs, i))[-1] for i in ids}
    assert (last[waiting.event_id].attempt, last[waiting.event_id].replay) == (2, False)
    assert (last[never_tried].attempt, last[never_tried].replay) == (1, False)
    assert (last[dead].attempt, last[dead].replay) == (1, True)
    assert all(d.verified for d in last.values())
    actions = await db.fetch("SELECT entity_id, action, actor FROM audit_log ORDER BY id")
    assert sorted((r["entity_id"], r["action"], r["actor"]) for r in actions) == sorted(
        (i, "webhook.redrive", "hubctl:sre-test") for i in ids
    )


async def test_a_redriven_never_attempted_webhook_goes_out_as_a_first_attempt_not_a_replay(
    settings: DispatcherSettings, rgs: Rgs, db: asyncpg.Connection, ctl: HubctlSettings
) -> None:
    never_tried = str(uuid.uuid4())
    body = {"eventId": never_tried, "eventType": "transaction.completed", "data": {"playerId": "p-1"}}
    await db.execute(
        """INSERT INTO webhook_outbox (id, client_id, event_type, payload, status, retry_count, correlation_id)
           VALUES ($1::uuid, $2, 'transaction.completed', $3::jsonb, 'PENDING', 0, 'corr-' || $1)""",
        never_tried,
        CLIENT,
        orjson.dumps(body).decode(),
    )
    redriven = await run_hubctl(ctl, "webhooks", "redrive", "--id", never_tried, "--yes")
    assert [(r["id"], r["result"]) for r in redriven] == [(never_tried, "republished attempt 1")]
    # The republished attempt is the row's only way out: a row the sweep may take goes out as an operator's
    # replay, and whichever of the two claims it first decides (the sweep, when the retry consumer is slow to join).
    pool = await asyncpg.create_pool(settings.database.url.get_secret_value(), min_size=1, max_size=1)
    try:
        assert await OutboxStore(pool).claim_due(limit=10, stale_after_s=settings.stale_processing_s) == []
    finally:
        await pool.close()
    async with serve(create_app(settings)):
        await eventually(lambda: all_in(db, "DELIVERED", never_tried), what="redriven delivery")

    (delivery,) = await deliveries(rgs, never_tried)
    assert (delivery.attempt, delivery.replay, delivery.verified) == (1, False, True)
    assert "X-Replay" not in delivery.headers
