"""The pieces of the database recovery drill: the Hub's services started and stopped apart from the mocks (the
operator's wallet must outlive the Hub's restart), signed load through the gateway, and pg_dump / pg_restore of
the stack's database with the PostgreSQL client tools of this machine."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg

from hub_common.db import migrate
from hub_common.db_access import OWNER, ROLE_BY_COMPONENT
from hub_devstack.postgres_local import find_pg_bin
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.stack import RunningService, run_services
from hub_devstack.stack_config import SERVICES, ServiceSpec, StackConfig, service_env
from hub_gateway.client import GatewayClient

MOCKS = tuple(s for s in SERVICES if s.name.startswith("mock"))
HUB = tuple(s for s in SERVICES if not s.name.startswith("mock"))


@contextmanager
def services(
    config: StackConfig, which: tuple[ServiceSpec, ...], *, kafka: str, roles: DatabaseRoles
) -> Iterator[list[RunningService]]:
    """Start `which` (specs of `SERVICES`) with the launcher's environment, each Hub service as its own database
    role; stop them on exit."""
    subset = replace(config, services=which)
    envs = {
        spec.name: service_env(
            spec,
            subset,
            kafka_bootstrap=kafka,
            database_url=(
                roles.component_url(spec.name, config.database_name) if spec.name in ROLE_BY_COMPONENT else None
            ),
        )
        for spec in which
    }
    with run_services(subset, envs) as running:
        yield running


@dataclass
class Told:
    """What the RGS was told about one transaction: the HTTP status and, once final, the status."""

    ref_id: str
    http: int
    status: str | None


async def post(gateway: GatewayClient, body: dict[str, Any]) -> Told:
    response = await gateway.post_transaction(body, idempotency_key=f"k-{body['refId']}")
    status = response.body.get("status") if isinstance(response.body, dict) and response.status < 300 else None
    if response.status == 422:
        status = "REJECTED"
    return Told(body["refId"], response.status, status)


def _run(tool: str, *args: str) -> None:
    done = subprocess.run([find_pg_bin(tool), *args], capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{tool} failed: {done.stdout}{done.stderr}")


async def dump(database_url: str, path: Path) -> None:
    """`pg_dump -Fc`: one consistent snapshot, taken when the dump starts."""
    await asyncio.to_thread(_run, "pg_dump", "-Fc", "-f", str(path), "-d", database_url)


async def restore(roles: DatabaseRoles, name: str, path: Path) -> None:
    """The documented restore from a dump: the database dropped and created anew for the owner role, the dump
    restored as the owner (its grants with it), then `hub-migrate` (migrations current, the role matrix applied)."""
    conn = await asyncpg.connect(roles.admin_url)
    try:
        await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            name,
        )
        await conn.execute(f'DROP DATABASE "{name}"')
        await conn.execute(f'CREATE DATABASE "{name}" OWNER "{OWNER}"')
    finally:
        await conn.close()
    owner_url = roles.owner_url(name)
    await asyncio.to_thread(_run, "pg_restore", "--no-owner", "--exit-on-error", "-d", owner_url, str(path))
    await migrate(owner_url)
