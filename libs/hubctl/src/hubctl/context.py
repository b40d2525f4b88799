"""Connection facts for hubctl, from the environment (`source .hub/env` after `make up`)."""

from __future__ import annotations

import getpass
import os
import shlex
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

import asyncpg
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from hub_common.errors import DatabaseUnavailableError
from hub_common.secret_policy import OptionalSecret, SecuredSettings
from hub_common.settings import DatabaseSettings, KafkaSettings


class HubctlSettings(SecuredSettings):
    # An empty variable (`HUBCTL_ACTOR=`) counts as unset.
    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    hub_url: str = "http://127.0.0.1:3000"
    operator_url: str = "http://127.0.0.1:3001"
    rgs_url: str = "http://127.0.0.1:3002"
    ledger_url: str = "http://127.0.0.1:3010"
    dispatcher_url: str = "http://127.0.0.1:3011"
    reconciler_url: str = "http://127.0.0.1:3012"
    operator_client_id: str = "integration-hub"
    # Only the commands that ask the operator need it.
    operator_secret: Annotated[SecretStr, OptionalSecret()] = SecretStr("")
    # Who runs a command that changes something (`HUBCTL_ACTOR`): recorded in its audit rows. Required unless
    # `HUB_DEV_MODE` is set (see `hubctl.audit`).
    hubctl_actor: str | None = None
    # `dev_mode` (SecuredSettings, `HUB_DEV_MODE=1`): a development stack (`make up` writes it to `.hub/env`);
    # never set in production.
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


def os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _session() -> dict[str, str]:
    # `hub.os_user` fills `audit_log.os_user` (its column default) for every audit row written on the session.
    return {"application_name": "hubctl", "hub.os_user": os_user()}


async def connect(settings: HubctlSettings) -> asyncpg.Connection:
    """One connection for a command; an unreachable database ends hubctl with one plain line (`hubctl.cli`)."""
    try:
        return await asyncpg.connect(settings.database.url.get_secret_value(), timeout=10, server_settings=_session())
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailableError(f"cannot reach PostgreSQL: {type(exc).__name__}") from exc


async def create_pool(settings: HubctlSettings) -> asyncpg.Pool:
    """A small pool, for a command that also spends the shared operator budget (which needs its own connection)."""
    try:
        pool: asyncpg.Pool = await asyncpg.create_pool(
            settings.database.url.get_secret_value(), min_size=1, max_size=2, server_settings=_session()
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DatabaseUnavailableError(f"cannot reach PostgreSQL: {type(exc).__name__}") from exc
    return pool


@asynccontextmanager
async def connection(settings: HubctlSettings) -> AsyncIterator[asyncpg.Connection]:
    """`connect`, closed however the command ends."""
    conn = await connect(settings)
    try:
        yield conn
    finally:
        await conn.close()
