"""What the stack launcher starts and with which environment (pure: no processes, no I/O)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hub_common.secret_policy import DEV_MODE_ENV
from hub_common.services import SERVICES as CATALOG
from hub_devstack.errors import PortInUseError
from hub_devstack.kafka_security import SecuredKafka
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.procs import LOOPBACK, port_is_free


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    module: str
    env_prefix: str
    default_port: int
    # Arguments after `python -m <module>`; the Hub's services take none.
    args: tuple[str, ...] = ()

    @property
    def port_env(self) -> str:
        return f"{self.env_prefix}PORT"


# Start order (hub_common.services): the mocks first (peers of the Hub services), the gateway last (it takes traffic).
SERVICES = tuple(ServiceSpec(s.name, s.module, s.env_prefix, s.default_port) for s in CATALOG)
BY_NAME = {spec.name: spec for spec in SERVICES}


@dataclass(frozen=True)
class DemoSecrets:
    client_id: str
    client_secret: str
    operator_client_id: str
    operator_secret: str
    webhook_secret: str
    # A second RGS client, so cross-client requests can be tried (its refIds, bets and tombstones are its own).
    second_client_id: str = "rgs-demo-2"
    second_client_secret: str = ""

    @classmethod
    def generate(cls, client_id: str = "rgs-demo") -> DemoSecrets:
        return cls(
            client_id=client_id,
            client_secret=secrets.token_urlsafe(32),
            operator_client_id="integration-hub",
            operator_secret=secrets.token_urlsafe(32),
            webhook_secret=secrets.token_urlsafe(32),
            second_client_secret=secrets.token_urlsafe(32),
        )

    def clients(self) -> dict[str, str]:
        """Every demo RGS client and its secret."""
        found = {self.client_id: self.client_secret}
        if self.second_client_secret:
            found[self.second_client_id] = self.second_client_secret
        return found


def ports_from_env(environ: Mapping[str, str]) -> dict[str, int]:
    """Each service's port: its own `<PREFIX>PORT` variable when set, else the documented default."""
    ports = {}
    for spec in SERVICES:
        raw = environ.get(spec.port_env, "").strip()
        ports[spec.name] = int(raw) if raw else spec.default_port
    return ports


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path
    ports: Mapping[str, int] = field(default_factory=lambda: {s.name: s.default_port for s in SERVICES})
    secrets: DemoSecrets = field(default_factory=DemoSecrets.generate)
    # None: provide the infrastructure (env, Docker, or local processes). Given: use as is.
    kafka_bootstrap: str | None = None
    admin_database_url: str | None = None
    # Roles already provisioned on the given cluster (roles are cluster-wide: the tests' session owns them).
    # None: the launcher generates passwords and creates the roles (docs/security.md).
    db_roles: DatabaseRoles | None = None
    # Kafka with TLS, SCRAM/mTLS principals and ACLs (`hub-up --secure`): a secured local broker is started,
    # or `secured_kafka` (already running) is used. Off: PLAINTEXT on loopback.
    secure_kafka: bool = False
    secured_kafka: SecuredKafka | None = None
    database_name: str = "integration_hub"
    topic_prefix: str = ""
    operator_rate_per_minute: int = 60
    # Extra variables for every service (tests shorten budgets and retry schedules this way).
    extra_env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 60.0
    stop_grace_s: float = 10.0
    services: tuple[ServiceSpec, ...] = SERVICES

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def url(self, service: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[service]}"


def check_ports(config: StackConfig) -> None:
    """Fail before starting anything when a port is taken, naming the variable that moves it."""
    for spec in config.services:
        port = config.ports[spec.name]
        if not port_is_free(port):
            raise PortInUseError(port, spec.port_env, spec.name)


def service_env(
    spec: ServiceSpec,
    config: StackConfig,
    *,
    kafka_bootstrap: str,
    database_url: str | None,
    kafka_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables one service gets on top of the caller's environment (names per docs/architecture.md).

    `database_url`: the service's own role (None: a mock, which has no database); `kafka_env`: the `KAFKA_*`
    credentials of its principal on a secured broker."""
    s = config.secrets
    operator = {
        "URL": config.url("mock-operator"),
        "CLIENT_ID": s.operator_client_id,
        "SECRET": s.operator_secret,
        "RATE_PER_MINUTE": str(config.operator_rate_per_minute),
    }
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": config.topic_prefix,
        **({"DATABASE_URL": database_url} if database_url is not None else {}),
        **(kafka_env or {}),
        "PYTHONUNBUFFERED": "1",
        # A development stack: loopback http webhook receiver, generated secrets; see hub_common.secret_policy.
        DEV_MODE_ENV: "1",
        spec.port_env: str(config.ports[spec.name]),
        f"{spec.env_prefix}HOST": LOOPBACK,
    }
    if spec.name == "mock-operator":
        env["MOCK_OPERATOR_SECRET"] = s.operator_secret
        env["MOCK_OPERATOR_CLIENT_ID"] = s.operator_client_id
        env["MOCK_OPERATOR_RATE_LIMIT_PER_MINUTE"] = str(config.operator_rate_per_minute)
    elif spec.name == "mock-rgs":
        env["MOCK_RGS_SECRETS"] = json.dumps([s.webhook_secret])
    elif spec.name == "webhook-dispatcher":
        endpoint = {"url": config.url("mock-rgs") + "/webhooks", "secrets": [s.webhook_secret]}
        env["DISPATCHER_ENDPOINTS"] = json.dumps({client: endpoint for client in s.clients()})
    elif spec.name == "reconciler":
        # faust's files and the reports live with the stack's other run-time files, not in the caller's working dir.
        env["RECONCILER_DATA_DIR"] = str(config.state_dir / "reconciler")
        env["RECONCILER_REPORT_DIR"] = str(config.state_dir / "reconciliation-reports")
        # A local stack starts empty and is looked at within minutes: the feed reads every few seconds (its
        # calls wait behind every money movement in the shared budget) and findings wait 30 s, not 10 min.
        env.update(
            {
                "RECONCILER_FEED_POLL_INTERVAL_S": "5",
                "RECONCILER_FEED_DELAY_S": "1",
                "RECONCILER_FEED_START_LOOKBACK_S": "600",
                "RECONCILER_GRACE_WINDOW_S": "30",
                "RECONCILER_SWEEP_INTERVAL_S": "5",
            }
        )
    elif spec.name == "gateway":
        env["GATEWAY_CLIENTS"] = json.dumps({client: [secret] for client, secret in s.clients().items()})
    if config.topic_prefix:
        # A prefixed stack shares the broker with others: its consumer groups must not join theirs.
        env.update(
            {
                "LEDGER_GROUP_ID": f"{config.topic_prefix}hub-ledger",
                "DISPATCHER_CONSUMER_GROUP": f"{config.topic_prefix}hub-dispatcher",
            }
        )
    if spec.name in ("ledger", "gateway", "reconciler"):
        # The ledger calls the operator; the gateway's balance endpoint and the reconciler's feed do too.
        env.update({f"{spec.env_prefix}OPERATOR__{key}": value for key, value in operator.items()})
    env.update(config.extra_env)
    return env
