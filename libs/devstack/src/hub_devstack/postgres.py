"""A real PostgreSQL cluster for tests and `make up`, from where `HUB_INFRA` says (see hub_devstack.infra):
`DATABASE_URL`, a container from `HUB_POSTGRES_IMAGE`, or a private `initdb` cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hub_devstack.aio import run_sync
from hub_devstack.errors import DevstackError
from hub_devstack.infra import POSTGRES, Mode, provide, say
from hub_devstack.postgres_local import LocalPostgres

ENV_VAR = POSTGRES.env_var

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


def _in_docker(image: str) -> AbstractContextManager[str]:
    # testcontainers (and the Docker SDK) are imported only when Docker is used.
    from hub_devstack.docker_containers import postgres_in_docker  # noqa: PLC0415

    return postgres_in_docker(image)


@contextmanager
def provide_postgres(
    mode: Mode | None = None, *, ready_timeout_s: float = 60.0, report: Callable[[str], None] = say
) -> Iterator[str]:
    """Yield a superuser URL to database `postgres`; stop whatever this call started on exit.

    `mode` None: `HUB_INFRA` decides. `report` gets the one line saying which container runs, or why auto mode
    did not use Docker.
    """

    def ready(url: str) -> None:
        wait_for_postgres(url, timeout_s=ready_timeout_s)

    with provide(POSTGRES, mode, report, ready=ready, docker=_in_docker, local=LocalPostgres) as url:
        yield url
