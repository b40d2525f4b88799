"""A secured development broker: TLS everywhere, SCRAM and mutual-TLS clients, the KRaft StandardAuthorizer.

Listeners (all on loopback):
- SASL_SSL: clients authenticate with SCRAM-SHA-512 (users created at format time, `--add-scram`);
- SSL: mutual TLS, the client certificate's CN is the principal; also the inter-broker listener;
- CONTROLLER: mutual TLS too (KRaft cannot use SCRAM there), only the broker's own certificate gets in.
One principal per Hub component with the ACLs of hub_common.kafka_access; `hub-admin` (a super user, as the
broker itself) creates the topics and the ACLs before any service starts. Certificates come from a throwaway CA
generated with openssl into the broker's temp dir.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaClient
from aiokafka.protocol.admin import CreateAclsRequest

from hub_common.kafka import client_options, ensure_topics, hub_topics
from hub_common.kafka_access import DEFAULT_RETRY_TIERS, PRINCIPALS, Grant
from hub_common.settings import KafkaSettings
from hub_devstack.errors import DevstackError
from hub_devstack.tls import CertificateAuthority, Identity

ADMIN_USER = "hub-admin"
BROKER_USER = "hub-broker"
MECHANISM = "SCRAM-SHA-512"

# Kafka's wire codes (org.apache.kafka.common.acl / resource).
_RESOURCE = {"topic": 2, "group": 3, "cluster": 4}
_PATTERN = {"literal": 3, "prefix": 4}
_OPERATION = {"Read": 3, "Write": 4, "Create": 5, "Describe": 8, "DescribeConfigs": 10}
_ALLOW = 3


@dataclass
class BrokerSecurity:
    """What a `LocalKafka` needs to start secured; `prepare()` makes the certificates and passwords."""

    users: tuple[str, ...] = tuple(p.user for p in PRINCIPALS)
    passwords: dict[str, str] = field(default_factory=dict)
    certificates: dict[str, Identity] = field(default_factory=dict)
    cafile: Path | None = None
    _keystore: Path | None = None

    def prepare(self, folder: Path) -> None:
        ca = CertificateAuthority(folder / "tls")
        self.cafile = ca.certfile
        broker = ca.issue(BROKER_USER, server=True)
        self._keystore = folder / "tls" / "broker-keystore.pem"
        self._keystore.write_text(broker.keystore_pem())
        self._keystore.chmod(0o600)
        for user in (ADMIN_USER, *self.users):
            self.passwords[user] = secrets.token_urlsafe(32)
            self.certificates[user] = ca.issue(user)

    def format_args(self) -> list[str]:
        """`kafka-storage format` arguments that create every SCRAM user in the bootstrap metadata."""
        args: list[str] = []
        for user, password in self.passwords.items():
            args += ["--add-scram", f"{MECHANISM}=[name={user},password={password}]"]
        return args

    def listener_properties(self, *, host: str, port: int, mtls_port: int, controller_port: int) -> dict[str, str]:
        if self._keystore is None or self.cafile is None:
            raise DevstackError("BrokerSecurity.prepare() must run before the broker's properties are written")
        jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        return {
            "listeners": f"SASL_SSL://{host}:{port},SSL://{host}:{mtls_port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"SASL_SSL://{host}:{port},SSL://{host}:{mtls_port}",
            "inter.broker.listener.name": "SSL",
            "listener.security.protocol.map": "CONTROLLER:SSL,SSL:SSL,SASL_SSL:SASL_SSL",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self._keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.cafile),
            # Certificates are required on the SSL and CONTROLLER listeners; SCRAM clients need none.
            "ssl.client.auth": "required",
            "listener.name.sasl_ssl.ssl.client.auth": "none",
            # CN=hub-ledger -> User:hub-ledger: the same principal whichever way a component authenticates.
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "sasl.enabled.mechanisms": MECHANISM,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{BROKER_USER};User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found": "false",
        }


@dataclass(frozen=True)
class SecuredKafka:
    """Connection facts of a running secured broker."""

    bootstrap: str  # SASL_SSL (SCRAM)
    mtls_bootstrap: str  # SSL, client certificate required
    cafile: Path
    passwords: Mapping[str, str]
    certificates: Mapping[str, Identity]

    def settings_for(self, user: str, *, mtls: bool = False, **overrides: Any) -> KafkaSettings:
        """KafkaSettings that authenticate as `user`, by SCRAM or (`mtls`) by its certificate."""
        if mtls:
            cert = self.certificates[user]
            auth: dict[str, Any] = {
                "bootstrap_servers": self.mtls_bootstrap,
                "security_protocol": "SSL",
                "ssl_certfile": cert.certfile,
                "ssl_keyfile": cert.keyfile,
            }
        else:
            auth = {
                "bootstrap_servers": self.bootstrap,
                "security_protocol": "SASL_SSL",
                "sasl_username": user,
                "sasl_password": self.passwords[user],
            }
        return KafkaSettings(**{**auth, "ssl_cafile": self.cafile, "create_topics": False, **overrides})

    def env_for(self, user: str) -> dict[str, str]:
        """The `KAFKA_*` variables of a process that connects as `user` (SCRAM)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": MECHANISM,
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD": self.passwords[user],
            "KAFKA_SSL_CAFILE": str(self.cafile),
            "KAFKA_CREATE_TOPICS": "false",
        }

    def admin_settings(self, **overrides: Any) -> KafkaSettings:
        return self.settings_for(ADMIN_USER, **overrides)


async def create_acls(admin: KafkaSettings, principal: str, grants: tuple[Grant, ...]) -> None:
    """Allow `principal` every operation of `grants` from any host (aiokafka's admin client has no ACL call)."""
    client = AIOKafkaClient(**client_options(admin), request_timeout_ms=admin.request_timeout_ms)
    try:
        await client.bootstrap()
        node = client.get_random_node()
        for grant in grants:
            for operation in grant.operations:
                request = CreateAclsRequest(
                    _RESOURCE[grant.resource],
                    grant.name,
                    _PATTERN[grant.pattern],
                    principal,
                    "*",
                    _OPERATION[operation],
                    _ALLOW,
                )
                response = await client.send(node, request)
                errors = [(code, msg) for code, msg in response.creation_responses if code != 0]
                if errors:
                    raise DevstackError(f"Kafka refused the ACL {operation} {grant} for {principal}: {errors}")
    finally:
        await client.close()


async def apply_access(admin: KafkaSettings, *, retry_tiers: int = DEFAULT_RETRY_TIERS) -> list[str]:
    """The admin step: every Hub topic (with `admin.topic_prefix`) and every principal's ACLs; returns topics."""
    names = await ensure_topics(
        admin.model_copy(update={"create_topics": True}), hub_topics(retry_tiers), with_dlq=False
    )
    for principal in PRINCIPALS:
        scoped = principal.with_prefix(admin.topic_prefix)
        await create_acls(admin, scoped.principal, scoped.grants)
    return names


@contextmanager
def secured_kafka(*, cache_dir: Path | None = None, infra_dir: Path | None = None) -> Iterator[SecuredKafka]:
    """Start a secured local broker (jars), yield its facts once ready, stop it and delete its files on exit."""
    from hub_devstack.kafka import local_kafka  # noqa: PLC0415 - hub_devstack.kafka imports this module

    security = BrokerSecurity()
    broker = local_kafka(cache_dir=cache_dir, infra_dir=infra_dir, security=security)
    with broker:
        assert security.cafile is not None
        yield SecuredKafka(
            bootstrap=broker.bootstrap,
            mtls_bootstrap=broker.mtls_bootstrap,
            cafile=security.cafile,
            passwords=dict(security.passwords),
            certificates=dict(security.certificates),
        )
