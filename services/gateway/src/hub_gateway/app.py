"""Composition root of the gateway: every collaborator is built here and owned by a cleanup_ctx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import asyncpg
from aiohttp import web

from hub_common import db
from hub_common.http import OnFatal, Ops, background, closing, request_shutdown
from hub_common.kafka import COMMANDS, TRANSACTIONS, KafkaProbe, KafkaProducer, ensure_topics
from hub_common.operator import Budget, BudgetOutlook, OperatorClient, balance_caller
from hub_gateway import handlers
from hub_gateway.admission_control import AdmissionControl, AdmissionPolicy
from hub_gateway.auth import Authenticator
from hub_gateway.balance import OperatorBalanceService
from hub_gateway.commands import CommandPublisher, PreparedCommand
from hub_gateway.handlers import BALANCES, SETTINGS
from hub_gateway.middleware import plumbing
from hub_gateway.openapi import OpenApi
from hub_gateway.outcomes import OutcomeListener, OutcomeWaiter
from hub_gateway.service import AdmissionConfig, AdmissionService
from hub_gateway.settings import GatewaySettings
from hub_gateway.store import ForecastReads, TransactionStore, create_admission_pool

SERVICE = "gateway"
CLIENT_ID = "hub-gateway"

POOL = web.AppKey("gateway_pool", asyncpg.Pool)
ADMISSION_POOL = web.AppKey("gateway_admission_pool", asyncpg.Pool)
PRODUCER = web.AppKey("gateway_producer", KafkaProducer)
LISTENER = web.AppKey("gateway_listener", OutcomeListener)
WAITER = web.AppKey("gateway_waiter", OutcomeWaiter)
STORE = web.AppKey("gateway_store", TransactionStore[PreparedCommand])
CONTROL = web.AppKey("gateway_admission_control", AdmissionControl)


def build_http_app(settings: GatewaySettings, ops: Ops) -> web.Application:
    """Routes, middleware and authentication; the services (`handlers.TRANSACTIONS`, `BALANCES`) come later."""
    auth = Authenticator(
        settings.clients, tolerance_s=settings.signature_tolerance_s, max_body_bytes=settings.max_body_bytes
    )
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[plumbing(auth.authenticate)])
    app[SETTINGS] = settings
    handlers.add_routes(app)
    ops.add_routes(app)
    app.router.add_get("/openapi.json", OpenApi().handle)
    return app


def create_app(settings: GatewaySettings, *, on_fatal: OnFatal = request_shutdown) -> web.Application:
    ops = Ops(SERVICE)
    app = build_http_app(settings, ops)

    async def database_ok() -> bool:
        return POOL in app and await db.ping(app[POOL])

    kafka_probe = KafkaProbe(settings.kafka)
    ops.checks.update({"kafka": kafka_probe.ping, "database": database_ok})

    async def topics(_: web.Application) -> AsyncIterator[None]:
        await ensure_topics(settings.kafka, [COMMANDS, TRANSACTIONS])
        yield

    async def pool(app: web.Application) -> AsyncIterator[None]:
        # The shared pool (balance budget, health); admissions and lookups use their own (store.py).
        app[POOL] = await db.create_pool(settings.database)
        yield
        await app[POOL].close()

    async def producer(app: web.Application) -> AsyncIterator[None]:
        # Not idempotent, so the request timeout bounds how long aiokafka may hold an unacknowledged command:
        # a command the gateway answered 503 for must never be delivered later (see KafkaProducer).
        kafka_settings = settings.kafka.model_copy(update={"request_timeout_ms": settings.producer_request_timeout_ms})
        app[PRODUCER] = KafkaProducer(
            kafka_settings, client_id=CLIENT_ID, idempotent=False, linger_ms=settings.command_linger_ms
        )
        await app[PRODUCER].start()
        yield
        await app[PRODUCER].stop()

    async def listener(app: web.Application) -> AsyncIterator[None]:
        app[WAITER] = OutcomeWaiter()
        app[LISTENER] = OutcomeListener(settings.kafka, app[WAITER], client_id=f"{CLIENT_ID}-outcomes")
        # Started (end offsets pinned) before readiness: no outcome of an admitted request can be missed.
        await app[LISTENER].start()
        yield
        await app[LISTENER].stop()

    async def services(app: web.Application) -> AsyncIterator[None]:
        commands = CommandPublisher(app[PRODUCER], timeout_s=settings.produce_timeout_s)
        app[STORE] = TransactionStore(
            app[ADMISSION_POOL],
            commands.publish,
            retry_after_s=settings.in_progress_retry_after_s,
            key_ttl_s=settings.idempotency_ttl_s,
            max_batch=settings.admission_max_batch,
            batches_in_flight=settings.admission_batches_in_flight,
        )
        reads = ForecastReads(app[POOL], settings.operator)
        policy = AdmissionPolicy(
            bet_useful_life_s=settings.bet_useful_life_s,
            client_bet_share=settings.client_bet_share,
            client_bet_floor=settings.client_bet_floor,
            balance_share=settings.balance_share,
        )
        app[CONTROL] = AdmissionControl(
            policy, read_outlook=reads.outlook, read_work=reads.open_work, idle=BudgetOutlook.idle(settings.operator)
        )
        # One read before readiness: the first requests are admitted on the real state, not an idle guess.
        await app[CONTROL].refresh()
        config = AdmissionConfig(
            outcome_budget_s=settings.outcome_budget_s,
            in_progress_retry_after_s=settings.in_progress_retry_after_s,
            bet_useful_life_s=settings.bet_useful_life_s,
        )
        app[handlers.TRANSACTIONS] = AdmissionService(app[STORE], commands, app[WAITER], app[CONTROL], config)
        yield
        await app[STORE].close()

    async def operator(app: web.Application) -> AsyncIterator[None]:
        client = OperatorClient(settings.operator, caller=SERVICE)
        # One caller per client in the shared budget: each client's reads are held to their own share.
        budgets = {c: Budget(app[POOL], settings.operator, caller=balance_caller(c)) for c in settings.clients}
        app[BALANCES] = OperatorBalanceService(
            client, budgets, app[CONTROL], budget_timeout_s=settings.balance_budget_timeout_s
        )
        yield
        for budget in budgets.values():
            await budget.close()
        await client.close()

    app.cleanup_ctx.extend(
        [
            closing(kafka_probe.close),
            topics,
            pool,
            _admission_pool(settings),
            producer,
            listener,
            background("gateway-outcomes", lambda app: app[LISTENER].run(), on_fatal=on_fatal),
            services,
            background(
                "gateway-forecast",
                lambda app: app[CONTROL].refresh_forever(settings.forecast_refresh_s),
                on_fatal=on_fatal,
            ),
            operator,
            ops.ready_while_running,
        ]
    )
    return app


def _admission_pool(settings: GatewaySettings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def admission_pool(app: web.Application) -> AsyncIterator[None]:
        app[ADMISSION_POOL] = await create_admission_pool(
            settings.database, size=settings.admission_pool_size, lock_timeout_ms=settings.admission_lock_timeout_ms
        )
        yield
        await app[ADMISSION_POOL].close()

    return admission_pool
