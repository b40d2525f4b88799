"""Settings of the webhook dispatcher (env prefix `DISPATCHER_`)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from hub_common.secret_policy import DEV_MODE_ENV, HttpsUrl
from hub_common.settings import BackendSettings, parse_secret_list

# Contract section 4: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h after the first attempt.
DEFAULT_RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]


class EndpointSettings(BaseModel):
    """One RGS client's webhook endpoint. Several secrets are active during a rotation; each signs."""

    # https outside development: the payload names players and amounts, and the receiver's answer decides retries.
    url: Annotated[str, HttpsUrl()] = Field(pattern=r"^https?://")
    secrets: Annotated[list[SecretStr], BeforeValidator(parse_secret_list)] = Field(min_length=1)
    # None: the service-wide defaults below.
    timeout_s: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)


class DispatcherSettings(BackendSettings):
    model_config = SettingsConfigDict(env_prefix="DISPATCHER_")

    port: int = Field(default=3011, ge=0, le=65535)

    # Client id -> endpoint; JSON in the environment (`DISPATCHER_ENDPOINTS`).
    endpoints: dict[str, EndpointSettings] = Field(default_factory=dict)
    consumer_group: str = "hub-dispatcher"

    retry_schedule_ms: list[int] = Field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE_MS), min_length=1)
    retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    # A receiver's Retry-After may push a retry later than the schedule, never further than this.
    retry_after_max_ms: int = Field(default=3_600_000, ge=0)

    timeout_s: float = Field(default=10.0, gt=0)
    max_concurrency_per_endpoint: int = Field(default=10, ge=1)
    # Deliveries in flight per consumer (main topic and each retry tier); the poll loop waits beyond it.
    max_in_flight: int = Field(default=100, ge=1)
    response_excerpt_bytes: int = Field(default=1024, ge=0)
    # Row writes of concurrent deliveries are group-committed; at most this many rows per statement.
    write_batch_max: int = Field(default=500, ge=1)

    # The circuit opens after this many consecutive failures, once the endpoint has also answered no call
    # successfully for `breaker_quiet_s`: a receiver that rejects a steady share of events keeps getting the rest.
    breaker_failure_threshold: int = Field(default=5, ge=1)
    breaker_quiet_s: float = Field(default=10.0, ge=0)
    breaker_open_s: float = Field(default=30.0, gt=0)

    # The runbook's recovery and replay procedures reset rows to PENDING; this sweep picks them up.
    sweep_interval_s: float = Field(default=5.0, gt=0)
    sweep_batch: int = Field(default=100, ge=1)
    # A row left PROCESSING this long belongs to a crashed attempt and is taken over.
    stale_processing_s: float = Field(default=300.0, gt=0)
    # DELIVERED rows are deleted this long after delivery (runbook "Weekly cleanup"); dead letters are kept.
    delivered_retention_days: int = Field(default=30, ge=1)
    purge_interval_s: float = Field(default=3600.0, gt=0)

    @field_validator("retry_schedule_ms")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v <= 0 for v in value):
            raise ValueError("every retry delay must be a positive number of milliseconds")
        return value

    @property
    def max_attempts(self) -> int:
        return len(self.retry_schedule_ms) + 1


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return {name: _plain(item) for name, item in value}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def to_environment(settings: DispatcherSettings) -> dict[str, str]:
    """The environment under which `python -m hub_dispatcher` loads exactly `settings` (secrets in clear):
    for launchers that run the dispatcher as a process (crash tests, benchmarks)."""
    env = {DEV_MODE_ENV: "1" if settings.dev_mode else "0"}
    for name, value in settings:
        if name == "dev_mode":
            continue  # one stack-wide switch, not a DISPATCHER_ variable
        plain = _plain(value)
        if plain is None:
            continue  # unset is the default; "null" would read back as a string
        env[f"DISPATCHER_{name.upper()}"] = plain if isinstance(plain, str) else orjson.dumps(plain).decode()
    return env
