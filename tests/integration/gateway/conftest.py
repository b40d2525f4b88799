"""Gateway integration fixtures: settings bound to the test's own topics and database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hub_common.settings import KafkaSettings
from hub_devstack.kafka import LocalKafka, local_kafka
from hub_gateway.settings import GatewaySettings
from support.gateway_it import CLIENT_ID, OTHER_CLIENT, OTHER_SECRET, SECRET
from support.roles import RoleDbSettings


@pytest.fixture
def gateway_settings(kafka_settings: KafkaSettings, role_db_settings: RoleDbSettings) -> GatewaySettings:
    return GatewaySettings(
        clients={CLIENT_ID: [SECRET], OTHER_CLIENT: [OTHER_SECRET]},
        kafka=kafka_settings,
        database=role_db_settings("gateway", pool_max_size=20),
        outcome_budget_s=0.5,
        forecast_refresh_s=0.05,
    )


@pytest.fixture(scope="module")
def private_kafka() -> Iterator[LocalKafka]:
    """A broker of its own for a test that stops it (the session's broker is shared and must stay up)."""
    broker = local_kafka()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
