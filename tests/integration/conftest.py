"""One real Kafka broker and one PostgreSQL cluster per test session; topics and databases isolated per test.

Where they come from (hub_devstack.infra, `HUB_INFRA=auto|env|docker|local`): `KAFKA_BOOTSTRAP_SERVERS` /
`DATABASE_URL` when set, else Docker when it answers and has (or can pull) the images, else local processes
(Kafka 4.x from its Maven Central jars, a private `initdb` cluster). The line saying which (and why) is printed.
If neither can be had the fixtures fail: integration tests error, they are never skipped.
Databases belong to the owner role and services connect as their own roles (hub_common.db_access), as in
production; `postgres_admin_url` (a superuser) is for what only an administrator may do.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import pytest_asyncio
from pydantic import SecretStr

from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_devstack.infra import say
from hub_devstack.kafka import delete_topics, provide_kafka
from hub_devstack.postgres import provide_postgres
from hub_devstack.postgres_roles import DatabaseRoles
from support.roles import RoleDbSettings


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
async def db_roles(postgres_admin_url: str) -> DatabaseRoles:
    """The owner and service roles (hub_common.db_access) with this session's passwords."""
    roles = DatabaseRoles.generate(postgres_admin_url)
    await roles.provision()
    return roles


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def template_database(db_roles: DatabaseRoles) -> str:
    """A migrated database every test database is copied from (CREATE DATABASE ... TEMPLATE is ~50 ms)."""
    name = f"hub_template_{uuid.uuid4().hex[:8]}"
    await db_roles.create_database(name)
    return name


@pytest.fixture
async def database_name(db_roles: DatabaseRoles, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test, owned by the owner role; dropped afterwards."""
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    await db_roles.create_database(name, template=template_database)
    yield name
    await db_roles.drop_database(name)


@pytest.fixture
def database_url(db_roles: DatabaseRoles, database_name: str) -> str:
    """The owner's URL of the test's database: for seeding and checking rows (services use `role_db_settings`)."""
    return db_roles.owner_url(database_name)


@pytest.fixture
def db_settings(database_url: str) -> DatabaseSettings:
    return DatabaseSettings(url=SecretStr(database_url), pool_min_size=1, pool_max_size=5)


@pytest.fixture
def role_db_settings(db_roles: DatabaseRoles, database_name: str) -> RoleDbSettings:
    """Database settings of one component (`gateway`, `ledger`, `webhook-dispatcher`, `reconciler`, `hubctl`):
    its own least-privilege role on the test's database, as in production."""

    def build(component: str, **overrides: Any) -> DatabaseSettings:
        url = SecretStr(db_roles.component_url(component, database_name))
        return DatabaseSettings(**{"url": url, "pool_min_size": 1, "pool_max_size": 5, **overrides})

    return build


@pytest.fixture
async def kafka_settings(kafka_bootstrap: str) -> AsyncIterator[KafkaSettings]:
    """Settings whose topic prefix is unique to this test: no test sees another's records.

    The test's topics are deleted afterwards: one broker serves the whole session, and every partition costs it
    open files (a long session would otherwise reach the descriptor limit).
    """
    settings = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=f"t{uuid.uuid4().hex[:10]}.", partitions=3)
    yield settings
    await delete_topics(kafka_bootstrap, settings.topic_prefix)
