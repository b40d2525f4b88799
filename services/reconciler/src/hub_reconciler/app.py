"""Composition root: the aiohttp ops server (/health /ready /metrics) with the faust join, the feed poller and
the daily run owned by its cleanup contexts, all in one process and one event loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import aiohttp
import asyncpg
from aiohttp import web

from hub_common import db, kafka
from hub_common.http import Ops, background, closing, stop_process
from hub_common.kafka import MISMATCHES, OPERATOR_TRANSACTIONS, SWEEP, TRANSACTIONS, KafkaProbe, KafkaProducer
from hub_common.operator import Budget, Priority
from hub_reconciler.daily import DailyReconciliation
from hub_reconciler.emitter import MismatchEmitter
from hub_reconciler.feed import FeedPoller, OperatorFeedClient
from hub_reconciler.report import RangeReconciler
from hub_reconciler.settings import ReconcilerSettings
from hub_reconciler.stream import JoinStream, OnFatal

SERVICE = "reconciler"

PRODUCER = web.AppKey("producer", KafkaProducer)
POOL = web.AppKey("pool", asyncpg.Pool)
FEED_CLIENT = web.AppKey("feed_client", OperatorFeedClient)
RANGE = web.AppKey("range_reconciler", RangeReconciler)
STREAM = web.AppKey("stream", JoinStream)


def _fatal(exc: BaseException) -> None:
    stop_process(f"join agent failed: {exc!r}")


def create_app(settings: ReconcilerSettings, *, on_fatal: OnFatal = _fatal) -> web.Application:
    app = web.Application()

    kafka_probe = KafkaProbe(settings.kafka)

    async def database_ok() -> bool:
        return POOL in app and await db.ping(app[POOL])

    async def stream_ok() -> bool:
        return STREAM in app and app[STREAM].healthy

    ops = Ops(SERVICE, {"kafka": kafka_probe.ping, "database": database_ok, "stream": stream_ok})
    ops.add_routes(app)

    async def topics(_: web.Application) -> AsyncIterator[None]:
        # Same partition count for all join inputs: the faust table requires co-partitioned sources.
        await kafka.ensure_topics(settings.kafka, [TRANSACTIONS, OPERATOR_TRANSACTIONS, SWEEP, MISMATCHES])
        yield

    async def producer(_: web.Application) -> AsyncIterator[None]:
        app[PRODUCER] = KafkaProducer(settings.kafka, client_id=f"{settings.kafka.client_id}-{SERVICE}")
        await app[PRODUCER].start()
        yield
        await app[PRODUCER].stop()

    async def pool(_: web.Application) -> AsyncIterator[None]:
        app[POOL] = await db.create_pool(settings.database)
        yield
        await app[POOL].close()

    async def feed(_: web.Application) -> AsyncIterator[None]:
        # Feed pages are operator calls too: they wait their turn in the budget every replica shares.
        budget = Budget(app[POOL], settings.operator)
        try:
            async with aiohttp.ClientSession() as session:
                gate = partial(budget.acquire, Priority.DEBIT)
                app[FEED_CLIENT] = OperatorFeedClient(settings.operator, session, gate=gate)
                app[RANGE] = RangeReconciler(app[POOL], app[FEED_CLIENT], report_dir=settings.report_dir)
                yield
        finally:
            await budget.close()

    async def stream(_: web.Application) -> AsyncIterator[None]:
        join = JoinStream(settings, producer=app[PRODUCER], emitter=MismatchEmitter(app[PRODUCER]), on_fatal=on_fatal)
        app[STREAM] = join
        await join.start()
        ops.ready = True
        yield
        ops.ready = False
        await join.stop()

    app.cleanup_ctx.extend([closing(kafka_probe.close), topics, producer, pool, feed, stream])

    if settings.feed_enabled:

        async def poll_feed() -> None:
            poller = FeedPoller(
                app[FEED_CLIENT],
                app[PRODUCER],
                interval_s=settings.feed_poll_interval_s,
                lookback_s=settings.feed_lookback_s,
                overlap_s=settings.feed_overlap_s,
            )
            await poller.run()

        app.cleanup_ctx.append(background("operator-feed-poller", poll_feed))

    if settings.daily_enabled:

        async def daily() -> None:
            await DailyReconciliation(app[RANGE].run, app[POOL], at_utc=settings.daily_at_utc).run_forever()

        app.cleanup_ctx.append(background("daily-reconciliation", daily))
    return app
