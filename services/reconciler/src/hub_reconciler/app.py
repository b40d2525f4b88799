"""Composition root: the aiohttp ops server (/health /ready /metrics) with the continuous join (its faust agent
and its sweep), the feed poller and the daily run owned by its cleanup contexts, all in one process and one event
loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from hub_common import db, kafka
from hub_common.http import CleanupCtx, OnFatal, Ops, background, closing, request_shutdown
from hub_common.jobs import every
from hub_common.kafka import MISMATCHES, OPERATOR_TRANSACTIONS, TRANSACTIONS, KafkaProbe, KafkaProducer
from hub_common.kafka_groups import GroupLagWatcher
from hub_common.operator import Budget, OperatorClient
from hub_common.reconciliation.report import RangeReport, day_bounds, wait_for_coverage
from hub_reconciler import store
from hub_reconciler.daily import DailyRuns
from hub_reconciler.feed import FeedPolicy, FeedPoller
from hub_reconciler.join import JoinState
from hub_reconciler.metrics import REPORT_SECONDS, SWEEP_RUNS
from hub_reconciler.settings import ReconcilerSettings
from hub_reconciler.stream import JOIN_TOPICS, JoinStream

SERVICE = "reconciler"
# The join's and the report's queries are estimated far above JIT's thresholds (a subquery per column of the
# few rows without a partner), and compiling them takes longer than running them (measured: 1.4 s against 0.15 s
# for a sweep of 5,000 ids). The report sets it per transaction too, for hubctl's pool.
SESSION = {"jit": "off"}
_PURGE_INTERVAL_S = 3600.0

log = logging.getLogger(__name__)

PRODUCER = web.AppKey("producer", KafkaProducer)
POOL = web.AppKey("pool", asyncpg.Pool)
OPERATOR = web.AppKey("operator", OperatorClient)
BUDGET = web.AppKey("budget", Budget)
STREAM = web.AppKey("stream", JoinStream)


def feed_policy(settings: ReconcilerSettings) -> FeedPolicy:
    return FeedPolicy(
        name=settings.feed_name,
        page_limit=settings.feed_page_limit,
        poll_interval_s=settings.feed_poll_interval_s,
        delay_s=settings.feed_delay_s,
        max_window_s=settings.feed_max_window_s,
        start_lookback_s=settings.feed_start_lookback_s,
    )


def daily_runs(settings: ReconcilerSettings, pool: asyncpg.Pool) -> DailyRuns:
    """The daily runs over `pool` (the service's and the CronJob form's)."""
    report = RangeReport(
        pool, report_dir=settings.report_dir, slice_s=settings.report_slice_s, feed_name=settings.feed_name
    )

    async def run_day(day: date) -> dict[str, Any]:
        _, end = day_bounds(day, day)
        await wait_for_coverage(pool, end, timeout_s=settings.daily_feed_wait_s, name=settings.feed_name)
        with REPORT_SECONDS.time():
            return await report.run(day, day)

    first = date.fromisoformat(settings.daily_first_day) if settings.daily_first_day else None
    return DailyRuns(
        pool,
        run_day,
        at_utc=settings.daily_at_utc,
        check_interval_s=settings.daily_check_interval_s,
        first_day=first,
    )


def create_app(settings: ReconcilerSettings, *, on_fatal: OnFatal = request_shutdown) -> web.Application:
    app = web.Application()

    kafka_probe = KafkaProbe(settings.kafka)

    async def database_ok() -> bool:
        return POOL in app and await db.ping(app[POOL])

    async def stream_ok() -> bool:
        return STREAM in app and app[STREAM].running

    ops = Ops(SERVICE, {"kafka": kafka_probe.ping, "database": database_ok, "stream": stream_ok})
    ops.add_routes(app)

    async def topics(_: web.Application) -> AsyncIterator[None]:
        await kafka.ensure_topics(settings.kafka, [TRANSACTIONS, OPERATOR_TRANSACTIONS, MISMATCHES])
        yield

    async def producer(_: web.Application) -> AsyncIterator[None]:
        app[PRODUCER] = KafkaProducer(settings.kafka, client_id=f"{settings.kafka.client_id}-{SERVICE}")
        await app[PRODUCER].start()
        yield
        await app[PRODUCER].stop()

    async def pool(_: web.Application) -> AsyncIterator[None]:
        app[POOL] = await db.create_pool(settings.database, server_settings=SESSION)
        yield
        await app[POOL].close()

    async def operator(_: web.Application) -> AsyncIterator[None]:
        # Feed pages are operator calls too: they wait their turn in the budget every process shares.
        app[BUDGET] = Budget(app[POOL], settings.operator, caller=SERVICE)
        app[OPERATOR] = OperatorClient(settings.operator, caller=SERVICE)
        yield
        await app[OPERATOR].close()
        await app[BUDGET].close()

    async def stream(_: web.Application) -> AsyncIterator[None]:
        join = JoinState(
            app[POOL],
            app[PRODUCER],
            grace_s=settings.grace_window_s,
            retention_s=settings.retention_s,
            feed_name=settings.feed_name,
        )
        # Events decided before a crash and not yet confirmed on Kafka go out first.
        await join.flush()
        app[STREAM] = JoinStream(settings, pool=app[POOL], producer=app[PRODUCER], join=join, on_fatal=on_fatal)
        await app[STREAM].start()
        yield
        await app[STREAM].stop()

    async def ready(_: web.Application) -> AsyncIterator[None]:
        ops.ready = True
        yield
        ops.ready = False

    app.cleanup_ctx.extend([closing(kafka_probe.close), topics, producer, pool, operator, stream])
    app.cleanup_ctx.extend(
        [
            background(
                "reconciler-sweep",
                lambda app: every(settings.sweep_interval_s, app[STREAM].sweep, SWEEP_RUNS, wake=app[STREAM].wake),
                on_fatal=on_fatal,
            ),
            ready,
        ]
    )
    app.cleanup_ctx.extend(_background_jobs(app, settings, on_fatal))
    return app


def _background_jobs(app: web.Application, settings: ReconcilerSettings, on_fatal: OnFatal) -> list[CleanupCtx]:
    # faust's consumer is not hub_common's KafkaConsumer: its group (the app id) is measured from outside.
    lag = GroupLagWatcher(settings.kafka, settings.kafka.topic(settings.app_id), JOIN_TOPICS)
    jobs: list[CleanupCtx] = [background("consumer-lag", lambda _: lag.run(), on_fatal=on_fatal)]
    if settings.feed_enabled:

        async def poll_feed(_: web.Application) -> None:
            poller = FeedPoller(app[POOL], app[OPERATOR], app[BUDGET], app[PRODUCER], feed_policy(settings))
            await poller.run()

        async def purge_operator_records(_: web.Application) -> None:
            while True:
                cutoff = datetime.now(UTC) - timedelta(days=settings.operator_retention_days)
                try:
                    await store.purge_operator_records(app[POOL], cutoff)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("operator records purge failed; retried later", extra={"error": repr(exc)})
                await asyncio.sleep(_PURGE_INTERVAL_S)

        jobs += [
            background("operator-feed-poller", poll_feed, on_fatal=on_fatal),
            background("operator-records-purge", purge_operator_records, on_fatal=on_fatal),
        ]
    if settings.daily_enabled:

        async def daily(_: web.Application) -> None:
            await daily_runs(settings, app[POOL]).run_forever()

        jobs.append(background("daily-reconciliation", daily, on_fatal=on_fatal))
    else:
        # The CronJob form runs the days: the service still exports what the daily-run alerts watch.
        async def observe(_: web.Application) -> None:
            await daily_runs(settings, app[POOL]).observe_forever()

        jobs.append(background("daily-reconciliation-observer", observe, on_fatal=on_fatal))
    return jobs
