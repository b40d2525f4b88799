"""A real PostgreSQL cluster for tests and `make up`.

Order (mode "auto"): `DATABASE_URL` when set; else `postgres:15` under testcontainers when Docker answers;
else a private `initdb` cluster. A mode can be forced: "env", "docker", "local".
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hub_devstack.aio import run_sync
from hub_devstack.docker_probe import docker_available
from hub_devstack.errors import DevstackError
from hub_devstack.postgres_local import LocalPostgres

Mode = Literal["auto", "env", "docker", "local"]
ENV_VAR = "DATABASE_URL"
IMAGE = "postgres:15"

__all__ = ["ENV_VAR", "LocalPostgres", "Mode", "database_url_for", "provide_postgres", "wait_for_postgres"]


def database_url_for(admin_url: str, database: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + database))


async def _answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        return bool(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


def wait_for_postgres(url: str, *, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not run_sync(lambda: _answers(url)):
        if time.monotonic() >= deadline:
            host = urlsplit(url).hostname
            raise DevstackError(f"PostgreSQL at {host} did not accept a connection within {timeout_s:.0f} s")
        time.sleep(1.0)


@contextmanager
def provide_postgres(mode: Mode = "auto", *, ready_timeout_s: float = 60.0) -> Iterator[str]:
    """Yield a superuser URL to database `postgres`; stop whatever this call started on exit."""
    given = os.environ.get(ENV_VAR)
    if mode == "env" or (mode == "auto" and given):
        if not given:
            raise DevstackError(f"{ENV_VAR} is not set")
        wait_for_postgres(given, timeout_s=ready_timeout_s)
        yield given
    elif mode == "docker" or (mode == "auto" and docker_available()):
        from testcontainers.community.postgres import PostgresContainer  # noqa: PLC0415 - only with Docker

        container = PostgresContainer(IMAGE, username="postgres", password="postgres", dbname="postgres")  # noqa: S106 - throwaway container
        with container:
            yield container.get_connection_url(driver=None)
    else:
        with LocalPostgres() as url:
            yield url
