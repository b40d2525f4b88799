"""Settings shared by the services' own settings classes.

Each service has exactly one `BaseSettings` subclass (its own env prefix, `__` nesting) that embeds these.
The infrastructure blocks are themselves `BaseSettings` built by `default_factory`, so the stack-wide names of
the contract (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`) work everywhere, while `GATEWAY_KAFKA__...` still
overrides one service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub_common.secret_policy import CredentialUrl, SecuredSettings

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    # How the client authenticates (docs/security.md). PLAINTEXT belongs to a loopback development broker only;
    # SASL_SSL: SCRAM user and password over TLS; SSL: mutual TLS, the client certificate names the principal.
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    # PEM files. The CA that signed the brokers' certificates (unset: the system trust store); the client's
    # certificate chain and private key for mutual TLS (the key may also sit in the certificate file).
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    # Prepended to every topic name; lets tests (and tenants) share one broker without sharing topics.
    topic_prefix: str = ""
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    request_timeout_ms: int = Field(default=15_000, ge=1_000)
    client_id: str = "integration-hub"
    # Consumer group liveness (aiokafka's defaults). A consumer that dies without leaving keeps its partitions
    # for `session_timeout_ms`; the broker accepts no less than its group.min.session.timeout.ms (6000 by default).
    session_timeout_ms: int = Field(default=10_000, ge=1)
    heartbeat_interval_ms: int = Field(default=3_000, ge=1)
    # Off where an admin step owns the topics (Strimzi KafkaTopic resources in production, the secured local
    # broker's admin principal): the services then only check at start that every topic they use exists, and
    # need no Create right. On for development and tests, where the services create what they use.
    create_topics: bool = True
    # How often each consumer group's lag (`hub_kafka_consumer_lag`) is measured; 0 turns the measurement off.
    lag_interval_s: float = Field(default=15.0, ge=0)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @model_validator(mode="after")
    def _credentials_match_the_protocol(self) -> KafkaSettings:
        sasl = self.sasl_username is not None or self.sasl_password is not None
        if self.security_protocol == "SASL_SSL" and not (self.sasl_username and self.sasl_password):
            raise ValueError("security_protocol SASL_SSL needs sasl_username and sasl_password")
        if self.security_protocol == "SSL" and self.ssl_certfile is None:
            raise ValueError("security_protocol SSL (mutual TLS) needs ssl_certfile (and ssl_keyfile unless combined)")
        if self.security_protocol == "PLAINTEXT" and (sasl or self.ssl_certfile or self.ssl_cafile):
            raise ValueError("SASL or TLS settings are given but security_protocol is PLAINTEXT: they would be ignored")
        if self.security_protocol == "SSL" and sasl:
            raise ValueError("SASL credentials are given but security_protocol is SSL: use SASL_SSL")
        return self


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATABASE_", extra="ignore")

    # Each service connects as its own role (docs/security.md); the password in the URL is a checked secret.
    url: Annotated[SecretStr, CredentialUrl()] = SecretStr("postgresql://postgres@127.0.0.1:5432/integration_hub")
    pool_min_size: int = Field(default=1, ge=0)
    # Sized so that every service at its documented maximum replica count fits PostgreSQL's default
    # max_connections = 100 with room for hubctl and the migration job (docs/deploy.md, "Database connections").
    pool_max_size: int = Field(default=5, ge=1)
    command_timeout_s: float = Field(default=10.0, gt=0)
    # asyncpg's prepared-statement cache per connection. Set 0 behind PgBouncer in transaction mode older than
    # 1.21 (or with max_prepared_statements = 0): a named statement prepared on one server connection does not
    # exist on the next one PgBouncer hands out.
    statement_cache_size: int = Field(default=100, ge=0)


class TelemetrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TELEMETRY_", extra="ignore")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    # OTLP is optional: without an endpoint spans are still created (ids in logs and Kafka headers), not exported.
    otlp_endpoint: str | None = None
    console_spans: bool = False


class ServiceSettings(SecuredSettings):
    """What every service's settings class has: where it listens, and its telemetry. A subclass sets its own
    `env_prefix` (`GATEWAY_`, ...) and overrides `port` with its default. Being `SecuredSettings`, it refuses weak
    secrets and http webhook URLs unless `HUB_DEV_MODE=1` (hub_common.secret_policy)."""

    model_config = SettingsConfigDict(env_nested_delimiter="__", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)


class BackendSettings(ServiceSettings):
    """A Hub service's settings: also its Kafka and PostgreSQL (the mocks have neither)."""

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)


def parse_secret_list(value: object) -> object:
    """Accept `a,b` from the environment for lists of secrets (two are active during rotation)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value
