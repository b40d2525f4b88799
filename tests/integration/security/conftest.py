"""A second, secured broker for the security tests only (TLS, SCRAM and mTLS principals, the StandardAuthorizer).

Started once for the session, the first time a test here needs it; the session's plaintext broker serves every
other test. Each test gets its own topic prefix, whose topics and ACLs the admin principal creates first.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from hub_common.settings import KafkaSettings
from hub_devstack.kafka_security import SecuredKafka, apply_access, secured_kafka
from support.roles import PrincipalSettings


@pytest.fixture(scope="session")
def secured_broker() -> Iterator[SecuredKafka]:
    with secured_kafka() as broker:
        yield broker


@pytest.fixture
async def secured_prefix(secured_broker: SecuredKafka) -> str:
    """A topic prefix whose Hub topics and per-principal ACLs exist on the secured broker (the admin step)."""
    prefix = f"s{uuid.uuid4().hex[:10]}."
    await apply_access(secured_broker.admin_settings(topic_prefix=prefix, partitions=2), retry_tiers=2)
    return prefix


@pytest.fixture
def as_principal(secured_broker: SecuredKafka, secured_prefix: str) -> PrincipalSettings:
    def build(user: str, *, mtls: bool = False) -> KafkaSettings:
        return secured_broker.settings_for(user, mtls=mtls, topic_prefix=secured_prefix, partitions=2)

    return build
