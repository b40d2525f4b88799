"""Fixtures every dispatcher integration test shares: a producer standing in for the ledger, a database link."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from hub_common.kafka import KafkaProducer
from hub_common.settings import DatabaseSettings, KafkaSettings
from support.roles import RoleDbSettings


@pytest.fixture
async def ledger(kafka_settings: KafkaSettings) -> AsyncIterator[KafkaProducer]:
    """Publishes TransactionEvents to hub.transactions the way the ledger's outbox relay does."""
    producer = KafkaProducer(kafka_settings, client_id="test-ledger")
    await producer.start()
    yield producer
    await producer.stop()


@pytest.fixture
def dispatcher_db(role_db_settings: RoleDbSettings) -> DatabaseSettings:
    """The dispatcher's own role on the test's database (as in production)."""
    return role_db_settings("webhook-dispatcher")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()
