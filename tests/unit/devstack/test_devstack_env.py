"""What each service is given, and the `.hub/env` file rendered from the stack's facts."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
from pathlib import Path

from hub_devstack.facts import StackFacts
from hub_devstack.kafka_security import SecuredKafka
from hub_devstack.stack_config import BY_NAME, DemoSecrets, StackConfig, service_env

PORTS = {"mock-operator": 4001, "mock-rgs": 4002, "ledger": 4010, "webhook-dispatcher": 4011, "reconciler": 4012,
         "gateway": 4000}  # fmt: skip


def _envs(tmp_path: Path) -> dict[str, dict[str, str]]:
    config = StackConfig(
        state_dir=tmp_path,
        ports=PORTS,
        secrets=DemoSecrets.generate(),
        topic_prefix="t1.",
        operator_rate_per_minute=120,
        extra_env={"GATEWAY_OUTCOME_BUDGET_S": "1"},
    )
    return {
        name: service_env(spec, config, kafka_bootstrap="127.0.0.1:9", database_url="postgresql://db/hub")
        for name, spec in BY_NAME.items()
    }


def test_the_ledger_signs_with_the_secret_the_mock_operator_verifies(tmp_path: Path) -> None:
    envs = _envs(tmp_path)
    operator, ledger = envs["mock-operator"], envs["ledger"]
    assert operator["MOCK_OPERATOR_SECRET"] == ledger["LEDGER_OPERATOR__SECRET"]
    assert operator["MOCK_OPERATOR_CLIENT_ID"] == ledger["LEDGER_OPERATOR__CLIENT_ID"]
    assert ledger["LEDGER_OPERATOR__URL"] == "http://127.0.0.1:4001"
    assert ledger["LEDGER_OPERATOR__RATE_PER_MINUTE"] == operator["MOCK_OPERATOR_RATE_LIMIT_PER_MINUTE"] == "120"
    assert envs["gateway"]["GATEWAY_OPERATOR__SECRET"] == operator["MOCK_OPERATOR_SECRET"]
    assert envs["reconciler"]["RECONCILER_OPERATOR__SECRET"] == operator["MOCK_OPERATOR_SECRET"]


def test_the_dispatcher_signs_webhooks_with_the_secrets_the_mock_rgs_verifies(tmp_path: Path) -> None:
    envs = _envs(tmp_path)
    endpoints = json.loads(envs["webhook-dispatcher"]["DISPATCHER_ENDPOINTS"])
    clients = json.loads(envs["gateway"]["GATEWAY_CLIENTS"])
    # Two demo clients, so cross-client requests can be tried; each has its webhook endpoint.
    assert list(clients) == list(endpoints) == ["rgs-demo", "rgs-demo-2"]
    for client in clients:
        assert endpoints[client]["url"] == "http://127.0.0.1:4002/webhooks"
        assert endpoints[client]["secrets"] == json.loads(envs["mock-rgs"]["MOCK_RGS_SECRETS"])
        assert len(clients[client]) == 1
    assert clients["rgs-demo"] != clients["rgs-demo-2"]


def test_every_service_gets_infra_its_own_port_and_the_extra_env(tmp_path: Path) -> None:
    envs = _envs(tmp_path)
    for name, spec in BY_NAME.items():
        env = envs[name]
        assert env[spec.port_env] == str(PORTS[name])
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9"
        assert env["KAFKA_TOPIC_PREFIX"] == "t1."
        assert env["DATABASE_URL"] == "postgresql://db/hub"
        assert env["GATEWAY_OUTCOME_BUDGET_S"] == "1"
        assert not any(key.startswith("GATEWAY_PORT") for key in env if name != "gateway")


def _facts() -> StackFacts:
    return StackFacts(
        hub_url="http://127.0.0.1:3000",
        hub_client_id="rgs-demo",
        hub_client_secret="s3cr$t 'quoted'",
        database_url="postgresql://postgres@127.0.0.1:5432/integration_hub",
        kafka_bootstrap_servers="127.0.0.1:9092",
        operator_url="http://127.0.0.1:3001",
        rgs_url="http://127.0.0.1:3002",
        operator_client_id="integration-hub",
        operator_secret="op",
        webhook_secret="wh",
        service_urls=(("webhook-dispatcher", "http://127.0.0.1:3011"),),
        hub_second_client_id="rgs-demo-2",
        hub_second_client_secret="second",
        players=("demo-alice", "demo-bob"),
    )


def test_env_file_has_the_contract_keys() -> None:
    env = _facts().as_env()
    for key in ("HUB_URL", "HUB_CLIENT_ID", "HUB_CLIENT_SECRET", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS",
                "OPERATOR_URL", "RGS_URL", "HUB_PLAYERS", "HUB_CURRENCY", "HUB_SECOND_CLIENT_ID",
                "HUB_SECOND_CLIENT_SECRET"):  # fmt: skip
        assert key in env
    assert env["HUB_PLAYERS"] == "demo-alice,demo-bob"
    assert env["HUB_CURRENCY"] == "EUR"
    assert (env["HUB_SECOND_CLIENT_ID"], env["HUB_SECOND_CLIENT_SECRET"]) == ("rgs-demo-2", "second")
    assert env["HUB_DEV_MODE"] == "1"
    assert env["HUB_WEBHOOK_DISPATCHER_URL"] == "http://127.0.0.1:3011"


def test_env_file_is_private_and_a_shell_reads_back_every_value_exactly(tmp_path: Path) -> None:
    path = tmp_path / ".hub" / "env"
    facts = _facts()
    facts.write_env(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    assert all("=" in line and not line.startswith("export") for line in lines)
    script = f"set -a; . {path}; set +a; env -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True, env={"PATH": os.environ["PATH"]})
    seen = dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)
    for key, value in facts.as_env().items():
        assert seen[key] == value


def test_a_secured_stack_gives_each_service_its_principal_and_mocks_no_database(tmp_path: Path) -> None:
    secured = SecuredKafka(
        bootstrap="127.0.0.1:1",
        mtls_bootstrap="127.0.0.1:2",
        cafile=tmp_path / "ca.pem",
        passwords={"hub-ledger": "ledger-password"},
        certificates={},
    )
    config = StackConfig(state_dir=tmp_path, ports=PORTS, secured_kafka=secured)
    ledger = service_env(
        BY_NAME["ledger"],
        config,
        kafka_bootstrap=secured.bootstrap,
        database_url="postgresql://hub_ledger:pw@db/hub",
        kafka_env=secured.env_for("hub-ledger"),
    )
    assert ledger["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:1"
    assert (ledger["KAFKA_SECURITY_PROTOCOL"], ledger["KAFKA_SASL_USERNAME"]) == ("SASL_SSL", "hub-ledger")
    assert ledger["KAFKA_SASL_PASSWORD"] == "ledger-password"
    assert ledger["KAFKA_SSL_CAFILE"] == str(tmp_path / "ca.pem")
    assert ledger["KAFKA_CREATE_TOPICS"] == "false"
    assert ledger["HUB_DEV_MODE"] == "1"
    mock = service_env(BY_NAME["mock-rgs"], config, kafka_bootstrap=secured.bootstrap, database_url=None)
    assert "DATABASE_URL" not in mock and "KAFKA_SASL_PASSWORD" not in mock


def test_env_file_carries_the_owner_url_the_dev_switch_and_extra_credentials() -> None:
    facts = dataclasses.replace(
        _facts(),
        database_owner_url="postgresql://hub_owner:pw@127.0.0.1:5432/integration_hub",
        extra_env=(("KAFKA_SASL_USERNAME", "hub-hubctl"),),
    )
    env = facts.as_env()
    assert env["DATABASE_OWNER_URL"].startswith("postgresql://hub_owner:")
    assert env["HUB_DEV_MODE"] == "1"
    assert env["KAFKA_SASL_USERNAME"] == "hub-hubctl"
