"""Per-endpoint limits on real Kafka and PostgreSQL: at most `max_concurrency` POSTs in flight to one RGS, and
a POST that outlives the endpoint's timeout counts as a failed attempt and is retried."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg
from aiohttp import web

from hub_common.kafka import KafkaProducer
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_dispatcher.app import create_app
from hub_dispatcher.settings import EndpointSettings
from support.apps import serve
from support.dispatcher_it import CLIENT, SECRETS, all_in, dispatcher_settings, publish, result_event
from support.waits import eventually


@dataclass
class SlowRgs:
    """Answers 200 after `delay_s` (the first `slow_first` POSTs take `slow_s` instead) and tracks concurrency."""

    delay_s: float
    slow_first: int = 0
    slow_s: float = 0.0
    in_flight: int = 0
    peak: int = 0
    posts: int = 0
    event_ids: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.posts += 1
        self.event_ids.append(request.headers["webhook-id"])
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.slow_s if self.posts <= self.slow_first else self.delay_s)
        finally:
            self.in_flight -= 1
        return web.Response(status=200)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks", self.handle)
        return app


async def test_never_more_than_the_endpoints_concurrency_in_flight(
    kafka_settings: KafkaSettings, dispatcher_db: DatabaseSettings, ledger: KafkaProducer, database_url: str
) -> None:
    rgs = SlowRgs(delay_s=0.2)
    async with serve(rgs.app()) as base:
        endpoint = EndpointSettings(url=base + "/webhooks", secrets=SECRETS, max_concurrency=2)
        settings = dispatcher_settings(kafka_settings, dispatcher_db, base, endpoints={CLIENT: endpoint})
        events = [result_event(player=f"p-{i}") for i in range(12)]
        async with serve(create_app(settings)):
            await publish(ledger, *events)
            db = await asyncpg.connect(database_url)
            try:
                ids = [e.event_id for e in events]
                await eventually(lambda: all_in(db, "DELIVERED", *ids), timeout_s=60, what="all delivered")
            finally:
                await db.close()
    assert sorted(set(rgs.event_ids)) == sorted(e.event_id for e in events)
    assert rgs.peak == 2


async def test_a_post_slower_than_the_endpoint_timeout_is_retried(
    kafka_settings: KafkaSettings, dispatcher_db: DatabaseSettings, ledger: KafkaProducer, database_url: str
) -> None:
    rgs = SlowRgs(delay_s=0.0, slow_first=1, slow_s=2.0)
    async with serve(rgs.app()) as base:
        endpoint = EndpointSettings(url=base + "/webhooks", secrets=SECRETS, timeout_s=0.3)
        settings = dispatcher_settings(kafka_settings, dispatcher_db, base, endpoints={CLIENT: endpoint})
        event = result_event()
        async with serve(create_app(settings)):
            await publish(ledger, event)
            db = await asyncpg.connect(database_url)
            try:
                await eventually(lambda: all_in(db, "DELIVERED", event.event_id), timeout_s=60, what="delivered")
                row = await db.fetchrow(
                    "SELECT retry_count, attempts::text AS attempts FROM webhook_outbox WHERE id = $1::uuid",
                    event.event_id,
                )
            finally:
                await db.close()
    assert rgs.event_ids[:2] == [event.event_id, event.event_id]
    assert row is not None and row["retry_count"] >= 1
    assert "timeout" in row["attempts"].lower()
