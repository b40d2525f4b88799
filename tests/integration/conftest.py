"""One real Kafka broker and one PostgreSQL cluster per test session; topics and databases isolated per test.

Where they come from (hub_devstack.infra, `HUB_INFRA=auto|env|docker|local`): `KAFKA_BOOTSTRAP_SERVERS` /
`DATABASE_URL` when set, else Docker when it answers and has (or can pull) the images, else local processes
(Kafka 4.x from its Maven Central jars, a private `initdb` cluster). The line saying which (and why) is printed.
If neither can be had the fixtures fail: integration tests error, they are never skipped.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest
import pytest_asyncio
from pydantic import SecretStr

from hub_common.db import migrate
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_devstack.infra import say
from hub_devstack.kafka import delete_topics, provide_kafka
from hub_devstack.postgres import database_url_for, provide_postgres
from support.databases import fresh_database


def _terminal(config: pytest.Config) -> Callable[[str], None]:
    """Where the devstack's infrastructure line goes: the terminal, past output capturing."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return say

    def show(line: str) -> None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"infra: {line}", yellow=True)

    return show


@pytest.fixture(scope="session")
def kafka_bootstrap(pytestconfig: pytest.Config) -> Iterator[str]:
    with provide_kafka(report=_terminal(pytestconfig)) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_admin_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """URL of a superuser connection to the session's cluster (database `postgres`)."""
    with provide_postgres(report=_terminal(pytestconfig)) as url:
        yield url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def template_database(postgres_admin_url: str) -> str:
    """A migrated database every test database is copied from (CREATE DATABASE ... TEMPLATE is ~50 ms)."""
    name = f"hub_template_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(postgres_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    await migrate(database_url_for(postgres_admin_url, name))
    return name


@pytest.fixture
async def database_url(postgres_admin_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test; dropped afterwards."""
    async with fresh_database(postgres_admin_url, template=template_database) as url:
        yield url


@pytest.fixture
def db_settings(database_url: str) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(database_url), pool_min_size=1, pool_max_size=5)


@pytest.fixture
async def kafka_settings(kafka_bootstrap: str) -> AsyncIterator[KafkaSettings]:
    """Settings whose topic prefix is unique to this test: no test sees another's records.

    The test's topics are deleted afterwards: one broker serves the whole session, and every partition costs it
    open files (a long session would otherwise reach the descriptor limit).
    """
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=3)
    yield settings
    await delete_topics(kafka_bootstrap, settings.topic_prefix)
