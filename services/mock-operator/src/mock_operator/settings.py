"""Settings of the mock operator (env prefix `MOCK_OPERATOR_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from hub_common.settings import ServiceSettings
from mock_operator.models import PlayerSeed


class MockOperatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOCK_OPERATOR_")

    port: int = Field(default=3001, ge=0, le=65535)
    # The secret the Hub signs `/v2` requests with; no default so a stack never runs with a guessable one.
    secret: SecretStr
    # When set, a request carrying `X-Client-Id` must name this client; unset, any client id is accepted
    # (requests without the header always are: the contract signs with the secret alone).
    client_id: str | None = None
    rate_limit_per_minute: int = Field(default=60, ge=1)
    timestamp_tolerance_s: int = Field(default=300, ge=1)
    # How long a `timeoutAfterApply` fault hangs before dropping the connection (a fault may override it).
    hang_ms: int = Field(default=30_000, ge=0)
    # Seed of the fault RNG; `None` draws from the OS so runs differ.
    fault_seed: int | None = None
    # Players present at start-up (JSON list), so a stack has funded wallets without an admin call.
    players: list[PlayerSeed] = Field(default_factory=list)

    @field_validator("secret")
    @classmethod
    def _secret_not_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("must not be empty")
        return value
