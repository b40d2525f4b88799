"""Ledger fault tests: the real mock-operator process, a database, the topics, and a watch on hub.transactions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from hub_common.kafka import COMMANDS, TRANSACTIONS, KafkaProducer, ensure_topics
from hub_common.settings import KafkaSettings
from mock_operator.admin_client import OperatorAdminClient
from support.ledger_faults import Rig, mock_operator_service, running
from support.ledger_it import watch_transactions
from support.roles import RoleDbSettings


@pytest.fixture
async def rig(
    kafka_settings: KafkaSettings, database_url: str, role_db_settings: RoleDbSettings, tmp_path: Path
) -> AsyncIterator[Rig]:
    ledger_url = role_db_settings("ledger").url.get_secret_value()
    await ensure_topics(kafka_settings, [COMMANDS, TRANSACTIONS])
    operator = mock_operator_service(tmp_path, hang_ms=1_500)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    producer = KafkaProducer(kafka_settings, client_id="it-ledger-faults")
    await producer.start()
    try:
        async with (
            running(operator),
            aiohttp.ClientSession() as session,
            watch_transactions(kafka_settings, producer) as events,
        ):
            admin = OperatorAdminClient(session, operator.url)
            yield Rig(pool, producer, events, admin, operator, database_url, ledger_url, kafka_settings, tmp_path)
    finally:
        await producer.stop()
        await pool.close()
