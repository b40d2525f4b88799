"""The private-cluster PostgreSQL mode (forced with mode="local") and its ports; the env mode's readiness check."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from hub_devstack.errors import DevstackError, StartupError
from hub_devstack.postgres import provide_postgres, wait_for_postgres
from hub_devstack.postgres_local import LocalPostgres
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.procs import free_port


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        return {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
    finally:
        await conn.close()


async def test_local_cluster_serves_a_superuser_the_roles_and_the_hub_schema() -> None:
    with provide_postgres("local") as admin_url:
        conn = await asyncpg.connect(admin_url)
        try:
            assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert await conn.fetchval("SHOW max_connections") == "300"
            assert await conn.fetchval("SHOW fsync") == "off"
            assert str(await conn.fetchval("SHOW server_version")).startswith("15")
        finally:
            await conn.close()
        roles = DatabaseRoles.generate(admin_url)
        await roles.provision()
        url = await roles.create_database("integration_hub")
        assert url == roles.owner_url("integration_hub")
        assert await roles.create_database("integration_hub") == url  # a second run finds it, migrates nothing
        assert {"transactions", "idempotency_keys", "webhook_outbox", "audit_log"} <= await _tables(url)
        # Password authentication, not trust: the generated passwords are what lets a role in.
        without_password = urlunsplit(urlsplit(url)._replace(netloc=f"hub_owner@{urlsplit(url).netloc.split('@')[1]}"))
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(without_password)
    with pytest.raises(OSError):
        await asyncpg.connect(admin_url, timeout=3)


def test_env_mode_gives_up_with_a_clear_error_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    with pytest.raises(DevstackError, match="did not accept a connection within 1 s"):
        wait_for_postgres(dead, timeout_s=1)
    monkeypatch.setenv("DATABASE_URL", dead)
    with pytest.raises(DevstackError), provide_postgres("env", ready_timeout_s=1):
        pass  # pragma: no cover


def test_env_mode_uses_the_given_cluster(postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", postgres_admin_url)
    with provide_postgres("env") as url:
        assert url == postgres_admin_url


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def test_a_port_taken_between_its_choice_and_the_bind_is_chosen_again(
    taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = iter([taken_port, free_port()])
    monkeypatch.setattr("hub_devstack.postgres_local.free_port", lambda: next(ports))
    with LocalPostgres() as url:
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
    assert urlsplit(url).port != taken_port


def test_a_port_a_person_chose_is_not_changed_behind_their_back(taken_port: int) -> None:
    with pytest.raises(StartupError, match="Address already in use"), LocalPostgres(port=taken_port):
        pass  # pragma: no cover
