"""A running ledger (in-process) against the real broker and database and an in-process mock operator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest

from hub_common.kafka import COMMANDS, TRANSACTIONS, KafkaProducer, ensure_topics
from hub_common.settings import KafkaSettings
from hub_ledger.app import create_app
from hub_ledger.settings import LedgerSettings
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.app import create_app as create_operator
from mock_operator.models import PlayerSeed
from mock_operator.settings import MockOperatorSettings
from support.apps import serve
from support.ledger_it import OPERATOR_SECRET, Harness, ledger_settings, watch_transactions
from support.roles import RoleDbSettings


@pytest.fixture
async def operator_url() -> AsyncIterator[str]:
    settings = MockOperatorSettings(secret=OPERATOR_SECRET, port=0, rate_limit_per_minute=100_000, hang_ms=500)
    async with serve(create_operator(settings)) as url:
        yield url


@pytest.fixture
async def operator_admin(operator_url: str) -> AsyncIterator[OperatorAdminClient]:
    async with aiohttp.ClientSession() as session:
        admin = OperatorAdminClient(session, operator_url)
        await admin.seed_players(
            [PlayerSeed(player_id=f"p-{i}", balance_cents=10_000, currency="EUR") for i in range(1, 21)]
        )
        yield admin


@pytest.fixture
def make_settings(
    kafka_settings: KafkaSettings, role_db_settings: RoleDbSettings, operator_url: str
) -> Callable[..., LedgerSettings]:
    def make(**overrides: Any) -> LedgerSettings:
        return ledger_settings(kafka_settings, role_db_settings("ledger"), operator_url, **overrides)

    return make


@pytest.fixture
async def infra(kafka_settings: KafkaSettings, database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, KafkaProducer]]:
    await ensure_topics(kafka_settings, [COMMANDS, TRANSACTIONS])
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    producer = KafkaProducer(kafka_settings, client_id="it-ledger")
    await producer.start()
    try:
        yield pool, producer
    finally:
        await producer.stop()
        await pool.close()


@pytest.fixture
async def harness(
    infra: tuple[asyncpg.Pool, KafkaProducer], kafka_settings: KafkaSettings, operator_admin: OperatorAdminClient
) -> AsyncIterator[Harness]:
    pool, producer = infra
    async with watch_transactions(kafka_settings, producer) as events:
        yield Harness(pool, producer, events, operator_admin)


@pytest.fixture
async def ledger(harness: Harness, make_settings: Callable[..., LedgerSettings]) -> AsyncIterator[Harness]:
    """The harness with one ledger running on default test settings."""
    async with serve(create_app(make_settings())):
        yield harness
