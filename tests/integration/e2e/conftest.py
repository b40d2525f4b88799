"""One whole Hub (every service a real process, launched as `make up` does) shared by this directory's tests.

It runs on the session's broker and cluster, on free ports, with its own topic prefix and database; retry
schedules and budgets are shortened by configuration only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from hub_devstack.kafka import delete_topics
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.procs import port_is_free
from hub_devstack.stack import RunningStack, run_stack
from hub_devstack.stack_config import StackConfig
from support.stacks import own_stack


@pytest.fixture(scope="module")
def stack_config(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, postgres_admin_url: str, db_roles: DatabaseRoles
) -> StackConfig:
    return own_stack(
        tmp_path_factory.mktemp("stack"),
        "stack",
        kafka_bootstrap=kafka_bootstrap,
        admin_database_url=postgres_admin_url,
        db_roles=db_roles,
        extra_env={
            "RECONCILER_FEED_ENABLED": "false",
            # Gauges and lags measured every second: the metrics test sees them without waiting 15 s.
            "LEDGER_GAUGE_INTERVAL_S": "1",
            "KAFKA_LAG_INTERVAL_S": "1",
        },
        ready_timeout_s=90,
    )


@pytest.fixture(scope="module")
def stack(stack_config: StackConfig) -> Iterator[RunningStack]:
    with run_stack(stack_config) as running:
        yield running
    # Leaving the launcher stops every process it started and frees every port.
    assert all(s.proc.returncode is not None for s in running.services)
    assert all(port_is_free(port) for port in stack_config.ports.values())
    asyncio.run(delete_topics(running.facts.kafka_bootstrap_servers, stack_config.topic_prefix))
