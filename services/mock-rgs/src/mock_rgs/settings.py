"""Settings of the mock RGS (env prefix `MOCK_RGS_`)."""

from __future__ import annotations

from typing import Annotated

import orjson
from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import NoDecode, SettingsConfigDict

from hub_common.settings import ServiceSettings, parse_secret_list


def _secret_list(value: object) -> object:
    # The stack passes a JSON list; a person typing `a,b` by hand is understood too.
    if isinstance(value, str) and value.lstrip().startswith("["):
        return orjson.loads(value)
    return parse_secret_list(value)


class MockRgsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MOCK_RGS_")

    port: int = Field(default=3002, ge=0, le=65535)
    # Webhook secrets it verifies with (two during rotation); no default, so it never trusts a guessable one.
    secrets: Annotated[list[SecretStr], NoDecode, BeforeValidator(_secret_list)] = Field(min_length=1)
    timestamp_tolerance_s: int = Field(default=300, ge=1)
    # Oldest deliveries are forgotten beyond this many, so a long benchmark cannot exhaust memory.
    max_recorded: int = Field(default=100_000, ge=1)
    # Seed of the `failRate` RNG; `None` draws from the OS so runs differ.
    behaviour_seed: int | None = None
