"""PostgreSQL: the asyncpg pool and the versioned migration runner (`hub-migrate`)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

import asyncpg
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hub_common.db_access import apply_privileges
from hub_common.errors import DatabaseUnavailableError, FatalError, HubError
from hub_common.settings import DatabaseSettings

log = logging.getLogger(__name__)

# Any fixed number: serialises concurrent migrators (several replicas starting at once).
_MIGRATION_LOCK = 7_246_318_001
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


async def _keep_session(_: asyncpg.Connection) -> None:
    """A pool `reset` that sends nothing (asyncpg still rolls back a transaction left open)."""


async def create_pool(
    settings: DatabaseSettings,
    *,
    reset_session: bool = True,
    size: int | None = None,
    server_settings: dict[str, str] | None = None,
    keep_idle: bool = False,
) -> asyncpg.Pool:
    """A pool whose connections the `hub_db_pool_connections` gauge counts.

    `reset_session=False` skips the reset query asyncpg runs on every release (advisory unlock, CLOSE ALL,
    UNLISTEN, RESET ALL): one round trip per checkout saved. Only for code that never leaves session state
    behind: no session advisory locks, LISTEN, SET or cursors outside a transaction.
    `size` fixes the pool's size; `keep_idle` never closes idle connections (they keep their prepared statements).
    """
    try:
        pool = await asyncpg.create_pool(
            settings.url.get_secret_value(),
            min_size=settings.pool_min_size if size is None else size,
            max_size=settings.pool_max_size if size is None else size,
            command_timeout=settings.command_timeout_s,
            reset=None if reset_session else _keep_session,
            server_settings=server_settings,
            **({"max_inactive_connection_lifetime": 0} if keep_idle else {}),
        )
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailableError(f"cannot connect to PostgreSQL: {type(exc).__name__}") from exc
    assert pool is not None
    try:
        await _refuse_superuser(pool)
    except BaseException:
        await pool.close()
        raise
    _POOLS.add(pool)
    return pool


async def _refuse_superuser(pool: asyncpg.Pool) -> None:
    """A service connects as its own role (hub_common.db_access), never as a superuser: a superuser bypasses
    every grant, so one compromised service could rewrite the audit log or drop the schema."""
    try:
        row = await pool.fetchrow("SELECT current_user AS role, rolsuper FROM pg_roles WHERE rolname = current_user")
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseUnavailableError(f"cannot query PostgreSQL: {type(exc).__name__}") from exc
    if row["rolsuper"]:
        role = row["role"]
        raise FatalError(
            f"connected to PostgreSQL as superuser {role!r}: services must use their own role (docs/security.md)",
            role=role,
        )


class _PoolCollector(Collector):
    """`hub_db_pool_connections{state=in_use|idle|max}` over this process's open pools, read at scrape time."""

    def __init__(self) -> None:
        # asyncpg pools take no weak references: closed pools are dropped here, on add and on scrape.
        self._pools: set[asyncpg.Pool] = set()

    def add(self, pool: asyncpg.Pool) -> None:
        self._prune()
        self._pools.add(pool)

    def _prune(self) -> None:
        self._pools = {p for p in self._pools if not p.is_closing()}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "hub_db_pool_connections", "PostgreSQL pool connections of this process", labels=["state"]
        )
        in_use = idle = maximum = 0
        self._prune()
        for pool in self._pools:
            free = pool.get_idle_size()
            in_use += pool.get_size() - free
            idle += free
            maximum += pool.get_max_size()
        for state, value in (("in_use", in_use), ("idle", idle), ("max", maximum)):
            family.add_metric([state], value)
        yield family


# Registered once per process, like any module-level metric; pools join it as they are created.
_POOLS = _PoolCollector()
REGISTRY.register(_POOLS)


async def ping(pool: asyncpg.Pool) -> bool:
    try:
        await pool.fetchval("SELECT 1", timeout=2)
        return True
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("hub_common.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise FatalError("two migrations share a version number", versions=versions)
    return found


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations in order, each in its own transaction, then the roles' privileges
    (hub_common.db_access); returns the names applied. Run as the owner role of the schema."""
    conn = await asyncpg.connect(dsn)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                 version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for m in load_migrations():
            if m.version in done:
                if done[m.version] != m.checksum:
                    raise FatalError(f"migration {m.name} changed after it was applied", version=m.version)
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    m.version,
                    m.name,
                    m.checksum,
                )
            applied_now.append(m.name)
            log.info("migration applied", extra={"migration": m.name})
        # Every run, not only after a new migration: a changed matrix (or a hand-made grant) is corrected too.
        await apply_privileges(conn)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied_now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hub-migrate",
        description="Apply the Hub's database migrations, then the roles' privileges (run as the schema owner).",
    )
    parser.add_argument("--database-url", help="defaults to DATABASE_URL")
    args = parser.parse_args(argv)
    dsn = args.database_url or DatabaseSettings().url.get_secret_value()
    try:
        applied = asyncio.run(migrate(dsn))
    except HubError as exc:
        print(f"hub-migrate: {exc.message}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "") + "; privileges set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
