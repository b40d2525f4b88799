"""Composition root of the ledger: builds every collaborator, owns each resource in a cleanup_ctx."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import asyncpg
from aiohttp import web

from hub_common import db
from hub_common import kafka as hub_kafka
from hub_common.http import OnFatal, Ops, background, closing, request_shutdown
from hub_common.jobs import every
from hub_common.kafka import COMMANDS, TRANSACTIONS, KafkaConsumer, KafkaProbe, KafkaProducer
from hub_common.operator import LEDGER_CALLER, Budget, OperatorClient, Priority
from hub_ledger import gauges, jobs, metrics
from hub_ledger.consumer import CommandConsumer
from hub_ledger.ordering import PlayerQueues
from hub_ledger.outbox import OutboxRelay
from hub_ledger.processor import Processor
from hub_ledger.settings import LedgerSettings
from hub_ledger.store import Store

SERVICE = "ledger"
# Kafka client id (broker logs and quotas), unchanged by the service's name in logs and metrics.
CLIENT_ID = "hub-ledger"


@dataclass(frozen=True)
class Ledger:
    pool: asyncpg.Pool
    producer: KafkaProducer
    consumer: KafkaConsumer
    client: OperatorClient
    budget: Budget
    queues: PlayerQueues
    store: Store
    relay: OutboxRelay
    processor: Processor
    commands: CommandConsumer
    sweeper: jobs.Sweeper
    compensator: jobs.Compensator


LEDGER = web.AppKey("ledger", Ledger)


def lease_owner() -> str:
    """This process's name on the leases it holds (shown by hubctl when it refuses a held transaction)."""
    return f"ledger@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


OPS = web.AppKey("ops", Ops)


def create_app(settings: LedgerSettings, *, on_fatal: OnFatal = request_shutdown) -> web.Application:
    app = web.Application()

    async def database_ok() -> bool:
        return LEDGER in app and await db.ping(app[LEDGER].pool)

    kafka_probe = KafkaProbe(settings.kafka)
    ops = Ops(SERVICE, {"kafka": kafka_probe.ping, "database": database_ok})
    app[OPS] = ops
    ops.add_routes(app)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await hub_kafka.ensure_topics(settings.kafka, [COMMANDS, TRANSACTIONS])
        pool = await db.create_pool(settings.database, reset_session=False)  # no session state is ever left
        producer = KafkaProducer(settings.kafka, client_id=CLIENT_ID)
        client = OperatorClient(settings.operator, caller=SERVICE)
        budget = Budget(pool, settings.operator, caller=LEDGER_CALLER)
        queues = PlayerQueues(on_credit_behind=partial(budget.promote, priority=Priority.CREDIT))
        store = Store(
            pool,
            lease_owner=lease_owner(),
            lease_s=settings.lease_ttl_s,
            key_ttl=timedelta(hours=24),
            max_batch=settings.db_max_batch,
            batches_in_flight=settings.db_batches_in_flight,
        )
        consumer = KafkaConsumer(
            settings.kafka, [COMMANDS], group_id=settings.group_id, dlq_producer=producer, client_id=CLIENT_ID
        )
        try:
            await producer.start()
            await consumer.start()
            relay = OutboxRelay(pool, producer, poll_s=settings.outbox_poll_s, batch=settings.outbox_batch)
            processor = Processor(
                store, client, budget, settings, on_commit=relay.wake, credit_waiting=queues.credit_waiting
            )
            app[LEDGER] = Ledger(
                pool=pool,
                producer=producer,
                consumer=consumer,
                client=client,
                budget=budget,
                queues=queues,
                store=store,
                relay=relay,
                processor=processor,
                commands=CommandConsumer(
                    consumer,
                    processor.handle,
                    queues,
                    max_in_flight=settings.max_in_flight,
                    commit_interval_s=settings.commit_interval_s,
                    retry_initial_s=settings.retry_initial_s,
                    retry_max_s=settings.retry_max_s,
                ),
                sweeper=jobs.Sweeper(store, queues, processor.process, age_s=settings.sweep_age_s),
                compensator=jobs.Compensator(store, client, budget, deadline_s=settings.credit_deadline_s),
            )
            yield
        finally:
            await queues.close()
            await store.close()
            await consumer.stop()
            await budget.close()
            await client.close()
            await producer.stop()
            await pool.close()

    # The tasks start once `resources` has built the ledger, and find it under LEDGER.
    app.cleanup_ctx.append(closing(kafka_probe.close))
    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.extend(
        [
            background("outbox-relay", lambda app: app[LEDGER].relay.run(), on_fatal=on_fatal),
            background("command-consumer", lambda app: app[LEDGER].commands.run(), on_fatal=on_fatal),
            background(
                "sweeper",
                lambda app: every(settings.sweep_interval_s, app[LEDGER].sweeper.once, metrics.SWEEPER_RUNS),
                on_fatal=on_fatal,
            ),
            background(
                "compensator",
                lambda app: every(
                    settings.compensation_interval_s,
                    app[LEDGER].compensator.once,
                    metrics.COMPENSATION_RUNS,
                    app[LEDGER].compensator.wake,
                ),
                on_fatal=on_fatal,
            ),
            background(
                "key-cleanup",
                lambda app: every(
                    settings.key_cleanup_interval_s,
                    partial(jobs.clean_keys, app[LEDGER].store),
                    metrics.KEY_CLEANUP_RUNS,
                ),
                on_fatal=on_fatal,
            ),
            background(
                "state-gauges",
                lambda app: every(
                    settings.gauge_interval_s,
                    partial(gauges.refresh, app[LEDGER].pool, stuck_after_s=settings.sweep_age_s),
                    metrics.GAUGE_RUNS,
                ),
                on_fatal=on_fatal,
            ),
        ]
    )
    app.cleanup_ctx.append(ops.ready_while_running)
    return app
