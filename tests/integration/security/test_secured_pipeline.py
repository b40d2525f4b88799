"""The whole Hub on the secured broker, launched as `hub-up --secure` does: every service authenticates as its
own principal (SCRAM over TLS) under the ACLs, and as its own database role; the demo traffic goes through.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_common.settings import KafkaSettings
from hub_devstack.demo import render_table, run_demo
from hub_devstack.kafka_security import SecuredKafka
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.stack import RunningStack, run_stack
from hubctl.commands.topics import collect
from support.stacks import own_stack


@pytest.fixture(scope="module")
def secured_stack(
    tmp_path_factory: pytest.TempPathFactory,
    secured_broker: SecuredKafka,
    postgres_admin_url: str,
    db_roles: DatabaseRoles,
) -> Iterator[RunningStack]:
    config = own_stack(
        tmp_path_factory.mktemp("secured-stack"),
        "secured",
        secured_kafka=secured_broker,
        admin_database_url=postgres_admin_url,
        db_roles=db_roles,
        extra_env={"RECONCILER_FEED_ENABLED": "false", "KAFKA_PARTITIONS": "2"},
        ready_timeout_s=120,
    )
    with run_stack(config) as running:
        yield running


def test_every_service_runs_as_its_own_principal_and_role(secured_stack: RunningStack) -> None:
    by_name = {s.spec.name: s for s in secured_stack.services}
    for name, user in [
        ("gateway", "hub-gateway"),
        ("ledger", "hub-ledger"),
        ("webhook-dispatcher", "hub-webhook-dispatcher"),
        ("reconciler", "hub-reconciler"),
    ]:
        env = _environment(by_name[name].proc.pid)
        assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and env["KAFKA_SASL_USERNAME"] == user, name
        assert env["KAFKA_CREATE_TOPICS"] == "false", name
        assert env["DATABASE_URL"].startswith(f"postgresql://hub_{name.split('-')[-1]}:"), name
    assert "DATABASE_URL" not in _environment(by_name["mock-operator"].proc.pid)


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


async def test_the_demo_runs_end_to_end_on_the_secured_broker_and_hubctl_sees_it(secured_stack: RunningStack) -> None:
    result = await run_demo(secured_stack.facts, settle_timeout_s=60)
    table = render_table(result)
    assert result.rows and all(r.final_status in {"COMPLETED", "REJECTED"} for r in result.rows), table
    assert all(r.webhook for r in result.rows), table
    assert result.balances == {"demo-alice": 10_350, "demo-bob": 5_000, "demo-carol": 950}, table

    # hubctl, with the credentials `.hub/env` gives it, sees the topics and the ledger's committed offsets.
    env = dict(secured_stack.facts.as_env())
    assert env["KAFKA_SASL_USERNAME"] == "hub-hubctl"
    settings = KafkaSettings(
        bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        topic_prefix=env["KAFKA_TOPIC_PREFIX"],
        security_protocol="SASL_SSL",
        sasl_username=env["KAFKA_SASL_USERNAME"],
        sasl_password=env["KAFKA_SASL_PASSWORD"],
        ssl_cafile=Path(env["KAFKA_SSL_CAFILE"]),
    )
    rows = {row["topic"]: row for row in await collect(settings)}
    prefix = env["KAFKA_TOPIC_PREFIX"]
    assert f"{prefix}hub.commands" in rows and f"{prefix}hub.webhooks.dlq" in rows
    # The ledger's committed offsets are visible to hubctl (Describe on every group).
    assert f"{prefix}hub-ledger" in rows[f"{prefix}hub.commands"]["lag_by_group"]
