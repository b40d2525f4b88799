"""Composition root: builds every collaborator of the dispatcher and ties their lifetimes to the app."""

from __future__ import annotations

import functools
import random
from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import asyncpg
from aiohttp import web

from hub_common import db, kafka
from hub_common.http import OnFatal, Ops, background, closing, request_shutdown
from hub_common.jobs import every
from hub_common.kafka import (
    TRANSACTIONS,
    WEBHOOKS_DLQ,
    KafkaConsumer,
    KafkaProbe,
    KafkaProducer,
    Record,
    retry_topic,
)
from hub_common.schemas import WebhookRetry
from hub_dispatcher import metrics
from hub_dispatcher.dispatcher import Dispatcher
from hub_dispatcher.endpoints import Endpoints
from hub_dispatcher.loop import ConsumerLoop
from hub_dispatcher.policy import RetryPolicy
from hub_dispatcher.sender import Sender
from hub_dispatcher.settings import DispatcherSettings
from hub_dispatcher.store import OutboxStore
from hub_dispatcher.sweeper import Sweeper
from hub_dispatcher.writes import Writes

SERVICE = "webhook-dispatcher"
# Kafka client id (broker logs and quotas), unchanged by the service's name in logs and metrics.
CLIENT_ID = "hub-dispatcher"

SETTINGS = web.AppKey("settings", DispatcherSettings)
OPS = web.AppKey("ops", Ops)
PRODUCER = web.AppKey("producer", KafkaProducer)
POOL = web.AppKey("pool", asyncpg.Pool)
SESSION = web.AppKey("session", aiohttp.ClientSession)
DISPATCHER = web.AppKey("dispatcher", Dispatcher)
SWEEPER = web.AppKey("sweeper", Sweeper)
WRITES = web.AppKey("writes", Writes)
STORE = web.AppKey("store", OutboxStore)
LOOPS = web.AppKey("loops", list[ConsumerLoop])


def retry_tiers(settings: DispatcherSettings) -> list[int]:
    return list(range(1, len(settings.retry_schedule_ms) + 1))


def _due_at(record: Record) -> datetime:
    return record.envelope.payload_as(WebhookRetry).due_at


def create_app(
    settings: DispatcherSettings, *, rng: random.Random | None = None, on_fatal: OnFatal = request_shutdown
) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    kafka_probe = KafkaProbe(settings.kafka)
    ops = Ops(SERVICE, {"kafka": kafka_probe.ping, "database": lambda: db.ping(app[POOL])})
    app[OPS] = ops
    ops.add_routes(app)

    async def topics(_: web.Application) -> AsyncIterator[None]:
        names = [TRANSACTIONS, WEBHOOKS_DLQ, *(retry_topic(n) for n in retry_tiers(settings))]
        await kafka.ensure_topics(settings.kafka, names)
        yield

    async def producer(app: web.Application) -> AsyncIterator[None]:
        app[PRODUCER] = KafkaProducer(settings.kafka, client_id=CLIENT_ID)
        await app[PRODUCER].start()
        yield
        await app[PRODUCER].stop()

    async def pool(app: web.Application) -> AsyncIterator[None]:
        # Single statements only (no session locks, LISTEN, SET or cursors): the per-release reset query would
        # be one more round trip for each group-committed batch.
        app[POOL] = await db.create_pool(settings.database, reset_session=False)
        yield
        await app[POOL].close()

    async def session(app: web.Application) -> AsyncIterator[None]:
        # No cookie jar: a receiver's Set-Cookie must not ride along on the next webhook (to it or anyone),
        # and the jar's per-request filtering is CPU for nothing.
        app[SESSION] = aiohttp.ClientSession(connector=_connector(settings), cookie_jar=aiohttp.DummyCookieJar())
        yield
        await app[SESSION].close()

    async def pipeline(app: web.Application) -> AsyncIterator[None]:
        store = app[STORE] = OutboxStore(app[POOL])
        policy = RetryPolicy(
            settings.retry_schedule_ms,
            jitter=settings.retry_jitter,
            retry_after_max_ms=settings.retry_after_max_ms,
            rng=rng,
        )
        app[WRITES] = Writes(store, max_batch=settings.write_batch_max)
        app[DISPATCHER] = Dispatcher(
            store=store,
            writes=app[WRITES],
            sender=Sender(app[SESSION], excerpt_bytes=settings.response_excerpt_bytes),
            endpoints=Endpoints.from_settings(settings),
            policy=policy,
            producer=app[PRODUCER],
            record_spans=settings.telemetry.otlp_endpoint is not None or settings.telemetry.console_spans,
        )
        app[SWEEPER] = Sweeper(
            store,
            app[DISPATCHER],
            interval_s=settings.sweep_interval_s,
            batch=settings.sweep_batch,
            stale_after_s=settings.stale_processing_s,
        )
        yield
        # Cleanup runs in reverse: the loops have stopped (and drained) by now, so nothing is left to write.
        await app[WRITES].close()

    async def consumers(app: web.Application) -> AsyncIterator[None]:
        loops = [_main_loop(settings, app[PRODUCER], app[DISPATCHER])]
        loops += [_tier_loop(settings, app[PRODUCER], app[DISPATCHER], n) for n in retry_tiers(settings)]
        started: list[KafkaConsumer] = []
        try:
            for loop in loops:
                await loop.consumer.start()
                started.append(loop.consumer)
            app[LOOPS] = loops
            yield
        finally:
            for consumer in started:
                await consumer.stop()

    app.cleanup_ctx.extend([closing(kafka_probe.close), topics, producer, pool, session, pipeline, consumers])
    # The tasks start once the cleanup contexts above have run, and find what those built by its AppKey.
    app.cleanup_ctx.extend(
        background(f"consumer-{index}", functools.partial(_run_loop, index=index), on_fatal=on_fatal)
        for index in range(1 + len(retry_tiers(settings)))
    )
    app.cleanup_ctx.extend(
        [
            background("sweeper", lambda app: app[SWEEPER].run(), on_fatal=on_fatal),
            background("webhook-purge", _run_purge, on_fatal=on_fatal),
            ops.ready_while_running,
        ]
    )
    return app


async def _run_loop(app: web.Application, *, index: int) -> None:
    await app[LOOPS][index].run()


async def _run_purge(app: web.Application) -> None:
    settings, store = app[SETTINGS], app[STORE]

    async def once() -> None:
        metrics.PURGED.inc(await store.purge_delivered(older_than_days=settings.delivered_retention_days))

    await every(settings.purge_interval_s, once, metrics.PURGE_RUNS)


def _connector(settings: DispatcherSettings) -> aiohttp.TCPConnector:
    """One keep-alive pool for every endpoint; per-endpoint limits are semaphores in `Endpoints`, and the pool
    keeps as many connections per host as the largest of them, so none is reopened per POST."""
    per_host = max(
        (cfg.max_concurrency or settings.max_concurrency_per_endpoint for cfg in settings.endpoints.values()),
        default=settings.max_concurrency_per_endpoint,
    )
    return aiohttp.TCPConnector(limit=0, limit_per_host=per_host, keepalive_timeout=30)


def _main_loop(settings: DispatcherSettings, producer: KafkaProducer, dispatcher: Dispatcher) -> ConsumerLoop:
    consumer = KafkaConsumer(
        settings.kafka, [TRANSACTIONS], group_id=settings.consumer_group, dlq_producer=producer, client_id=CLIENT_ID
    )
    return ConsumerLoop("transactions", consumer, dispatcher.on_transaction_event, max_in_flight=settings.max_in_flight)


def _tier_loop(
    settings: DispatcherSettings, producer: KafkaProducer, dispatcher: Dispatcher, tier: int
) -> ConsumerLoop:
    topic = retry_topic(tier)
    consumer = KafkaConsumer(
        settings.kafka,
        [topic],
        group_id=f"{settings.consumer_group}-retry-{tier}",
        dlq_producer=producer,
        client_id=CLIENT_ID,
    )
    return ConsumerLoop(
        f"retry-{tier}", consumer, dispatcher.on_retry, max_in_flight=settings.max_in_flight, due_at=_due_at
    )
