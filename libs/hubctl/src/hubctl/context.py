"""Connection facts for hubctl, from the environment (`source .hub/env` after `make up`)."""

from __future__ import annotations

import getpass
import os
import shlex
from pathlib import Path
from typing import Annotated

import asyncpg
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from hub_common.secret_policy import OptionalSecret, SecuredSettings
from hub_common.settings import DatabaseSettings, KafkaSettings


def _default_actor() -> str:
    try:
        return f"hubctl:{getpass.getuser()}"
    except (KeyError, OSError):
        return "hubctl:unknown"


class HubctlSettings(SecuredSettings):
    model_config = SettingsConfigDict(extra="ignore")

    hub_url: str = "http://127.0.0.1:3000"
    operator_url: str = "http://127.0.0.1:3001"
    rgs_url: str = "http://127.0.0.1:3002"
    ledger_url: str = "http://127.0.0.1:3010"
    dispatcher_url: str = "http://127.0.0.1:3011"
    reconciler_url: str = "http://127.0.0.1:3012"
    operator_client_id: str = "integration-hub"
    # Only the commands that ask the operator need it.
    operator_secret: Annotated[SecretStr, OptionalSecret()] = SecretStr("")
    # Who runs the command: recorded in audit rows of manual interventions.
    hubctl_actor: str = Field(default_factory=_default_actor)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)

    def service_urls(self) -> dict[str, str]:
        return {
            "gateway": self.hub_url,
            "ledger": self.ledger_url,
            "webhook-dispatcher": self.dispatcher_url,
            "reconciler": self.reconciler_url,
            "mock-operator": self.operator_url,
            "mock-rgs": self.rgs_url,
        }


def load_env_file(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    """Read `KEY=value` lines written by `make up` into the environment, never overriding what is already set.

    So `hubctl` works in a plain shell after `make up`, whether or not `.hub/env` was sourced.
    """
    target = os.environ if environ is None else environ
    loaded: list[str] = []
    if not path.is_file():
        return loaded
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.removeprefix("export ").partition("=")
        key = key.strip()
        if key and key not in target:
            parsed = shlex.split(value)
            target[key] = parsed[0] if parsed else ""
            loaded.append(key)
    return loaded


async def connect(settings: HubctlSettings) -> asyncpg.Connection:
    """One connection for a command; an unreachable database ends hubctl with one plain line."""
    try:
        return await asyncpg.connect(settings.database.url.get_secret_value(), timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise SystemExit(f"hubctl: cannot reach PostgreSQL: {type(exc).__name__}") from exc
