"""Settings shared by the services' own settings classes.

Each service has exactly one `BaseSettings` subclass (its own env prefix, `__` nesting) that embeds these.
The infrastructure blocks are themselves `BaseSettings` built by `default_factory`, so the stack-wide names of
the contract (`KAFKA_BOOTSTRAP_SERVERS`, `DATABASE_URL`) work everywhere, while `GATEWAY_KAFKA__...` still
overrides one service.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
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
    # Off where an admin step owns the topics (Strimzi KafkaTopic resources in production, broker-side
    # auto-creation off): the services then only check at start that every topic they use exists, and need no
    # Create right. On for development and tests, where the services create what they use.
    create_topics: bool = True
    # How often each consumer group's lag (`hub_kafka_consumer_lag`) is measured; 0 turns the measurement off.
    lag_interval_s: float = Field(default=15.0, ge=0)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


class DatabaseSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DATABASE_", extra="ignore")

    url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/integration_hub")
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


class HttpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HTTP_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535)


def parse_secret_list(value: object) -> object:
    """Accept `a,b` from the environment for lists of secrets (two are active during rotation)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value
