"""Gateway settings: `GATEWAY_*` (nested blocks with `__`), plus the stack-wide Kafka/database names."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from hub_common.operator import OperatorSettings
from hub_common.settings import BackendSettings

KIB = 1024


class GatewaySettings(BackendSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    port: int = Field(default=3000, ge=0, le=65535)

    # client id -> its active secrets (two during a rotation). SecretStr keeps them out of reprs and logs.
    clients: dict[str, list[SecretStr]] = Field(default_factory=dict)
    supported_currencies: list[str] = Field(default_factory=lambda: ["EUR", "USD", "GBP"])
    signature_tolerance_s: int = Field(default=300, ge=1)
    max_body_bytes: int = Field(default=64 * KIB, ge=KIB)

    # How long a POST waits for the ledger's outcome before answering 202.
    outcome_budget_s: float = Field(default=5.0, ge=0, le=60)
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=1)
    # A second request for a key/refId that another request is still admitting waits at most this long for
    # the row lock before answering 409 REQUEST_IN_PROGRESS (short: it holds a pooled connection meanwhile).
    admission_lock_timeout_ms: int = Field(default=250, ge=1)
    in_progress_retry_after_s: int = Field(default=1, ge=1)
    # Connections of the admission pool, all opened at start-up and kept open (their prepared statements with
    # them). Each admission holds one from its insert until Kafka acknowledged the command and it committed
    # (a few ms): 6 admit thousands per second, and keep the connection budget (docs/deploy.md) within
    # PostgreSQL's default max_connections at the documented replica counts.
    admission_pool_size: int = Field(default=6, ge=1)
    # The longest a POST waits for Kafka to acknowledge its command. The producer's own request timeout is
    # derived from it (see `producer_request_timeout_ms`), so that aiokafka has given up on an unacknowledged
    # record before the gateway answers 503: no buffered record can reach the broker after that answer.
    produce_timeout_s: float = Field(default=10.0, ge=2.5)
    # How long the command producer waits to fill a batch. Concurrent admissions batch by themselves (aiokafka
    # keeps one request in flight per broker and sends what gathered meanwhile), so waiting only adds latency.
    command_linger_ms: int = Field(default=0, ge=0, le=100)

    # Admission is refused (429) while more than this many transactions wait for the ledger; 0 disables.
    max_backlog: int = Field(default=1000, ge=0)
    backlog_refresh_s: float = Field(default=1.0, gt=0)
    # 429's Retry-After is the time the ledger needs to drain the excess at the operator's rate, within these.
    rate_limited_retry_after_min_s: int = Field(default=1, ge=1)
    rate_limited_retry_after_max_s: int = Field(default=60, ge=1)

    # The balance endpoint's operator access; it shares the ledger's budget (same database, same budget_name).
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    balance_budget_timeout_s: float = Field(default=2.0, gt=0)

    @property
    def producer_request_timeout_ms(self) -> int:
        """aiokafka fails a record after at most about twice its request timeout (batch expiry plus one request
        in flight); a fifth of margin keeps that inside `produce_timeout_s`."""
        return int(self.produce_timeout_s * 1000 / 2.5)

    @model_validator(mode="after")
    def _retry_after_bounds(self) -> GatewaySettings:
        if self.rate_limited_retry_after_min_s > self.rate_limited_retry_after_max_s:
            raise ValueError("rate_limited_retry_after_min_s must not exceed rate_limited_retry_after_max_s")
        return self

    @field_validator("clients")
    @classmethod
    def _every_client_has_a_secret(cls, value: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        for client_id, secrets in value.items():
            if not secrets or any(not s.get_secret_value() for s in secrets):
                raise ValueError(f"client {client_id!r} needs at least one non-empty secret")
        return value

    @field_validator("supported_currencies")
    @classmethod
    def _iso_codes(cls, value: list[str]) -> list[str]:
        codes = [c.strip().upper() for c in value]
        if not codes or any(len(c) != 3 or not c.isalpha() for c in codes):
            raise ValueError('supported currencies must be ISO 4217 codes, e.g. ["EUR"]')
        return codes
