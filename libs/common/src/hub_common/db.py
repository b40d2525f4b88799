"""PostgreSQL: the asyncpg pool and the versioned migration runner (`hub-migrate`)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hub_common import db_metrics
from hub_common.db_access import apply_privileges
from hub_common.errors import DatabaseUnavailableError, FatalError, HubError
from hub_common.settings import DatabaseSettings

log = logging.getLogger(__name__)

# A connection of our own, or one acquired from a pool (its proxy): what query helpers take.
Connection: TypeAlias = "asyncpg.Connection | PoolConnectionProxy"

# Any fixed number: serialises concurrent migrators (several replicas starting at once).
_MIGRATION_LOCK = 7_246_318_001
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


async def _keep_session(_: asyncpg.Connection) -> None:
    """A pool `reset` that sends nothing (asyncpg still rolls back a transaction left open)."""


async def _instrument(conn: asyncpg.Connection) -> None:
    """Each new pooled connection times its statements into `hub_db_query_duration_seconds`."""
    conn.add_query_logger(db_metrics.observe)


async def create_pool(
    settings: DatabaseSettings,
    *,
    reset_session: bool = True,
    size: int | None = None,
    server_settings: dict[str, str] | None = None,
    keep_idle: bool = False,
) -> asyncpg.Pool:
    """A pool whose connections the `hub_db_pool_connections` gauge counts and whose statements are timed
    (`hub_common.db_metrics`).

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
            statement_cache_size=settings.statement_cache_size,
            reset=None if reset_session else _keep_session,
            server_settings=server_settings,
            init=_instrument,
            # 300 s is asyncpg's default; 0 never closes an idle connection.
            max_inactive_connection_lifetime=0 if keep_idle else 300.0,
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
    if row is not None and row["rolsuper"]:
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


async def ping(pool: asyncpg.Pool, *, timeout_s: float = 1.0) -> bool:
    """True when PostgreSQL answers `SELECT 1` on a pooled connection within `timeout_s` (readiness checks).

    A pool whose every connection is checked out counts as reachable: its connections are open and working, and
    waiting for one would make a busy replica look broken (the DatabasePoolExhausted alert covers that state).
    """
    if _saturated(pool):
        return True
    try:
        async with pool.acquire(timeout=timeout_s) as conn:
            await conn.fetchval("SELECT 1", timeout=timeout_s)
        return True
    except TimeoutError:
        return _saturated(pool)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


def _saturated(pool: asyncpg.Pool) -> bool:
    idle: int = pool.get_idle_size()
    return idle == 0 and pool.get_size() >= pool.get_max_size()


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


@dataclass(frozen=True)
class SchemaStatus:
    """How the database's applied migrations compare with the ones this build carries."""

    pending: list[str]
    changed: list[str]
    unknown: list[int]  # applied by a newer build (a rollback runs against a schema that is ahead)

    @property
    def current(self) -> bool:
        return not self.pending and not self.changed


async def schema_status(dsn: str, *, timeout_s: float = 5.0) -> SchemaStatus:
    """Read-only: needs SELECT on schema_migrations only, so a service's own role can run it."""
    conn = await asyncpg.connect(dsn, timeout=timeout_s)
    try:
        if await conn.fetchval("SELECT to_regclass('schema_migrations') IS NULL"):
            done: dict[int, str] = {}
        else:
            done = {
                r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
            }
    finally:
        await conn.close()
    known = load_migrations()
    return SchemaStatus(
        pending=[m.name for m in known if m.version not in done],
        changed=[m.name for m in known if m.version in done and done[m.version] != m.checksum],
        unknown=sorted(set(done) - {m.version for m in known}),
    )


async def wait_until_current(dsn: str, *, wait_s: float, poll_s: float = 2.0) -> tuple[SchemaStatus | None, str]:
    """Poll until every migration of this build is applied or `wait_s` has passed. Returns the last status
    (None when the database never answered) and the last error."""
    deadline = time.monotonic() + wait_s
    status: SchemaStatus | None = None
    error = ""
    while True:
        try:
            status, error = await schema_status(dsn), ""
        except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
            error = f"cannot read schema_migrations: {type(exc).__name__}: {exc}"
        if (status is not None and (status.current or status.changed)) or time.monotonic() >= deadline:
            return status, error
        await asyncio.sleep(poll_s)


def _check(dsn: str, wait_s: float) -> int:
    status, error = asyncio.run(wait_until_current(dsn, wait_s=wait_s))
    if status is None:
        print(f"hub-migrate --check: {error}", file=sys.stderr)
        return EXIT_NOT_CURRENT
    if status.changed:
        print(
            f"hub-migrate --check: applied migrations differ from this build: {', '.join(status.changed)}",
            file=sys.stderr,
        )
        return EXIT_CHANGED
    if status.pending:
        print(f"hub-migrate --check: {len(status.pending)} pending: {', '.join(status.pending)}", file=sys.stderr)
        return EXIT_NOT_CURRENT
    ahead = f" (database has newer migrations {status.unknown}: a rollback)" if status.unknown else ""
    print(f"schema is current{ahead}")
    return 0


EXIT_NOT_CURRENT = 1
EXIT_CHANGED = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hub-migrate",
        description="Apply the Hub's database migrations, then the roles' privileges (run as the schema owner).",
    )
    parser.add_argument("--database-url", help="defaults to DATABASE_URL")
    parser.add_argument(
        "--check",
        action="store_true",
        help="apply nothing; exit 0 when every migration of this build is applied, 1 when some are pending, "
        "2 when an applied migration differs from this build's",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="with --check: keep checking this long for the migrations to be applied (an init container)",
    )
    args = parser.parse_args(argv)
    dsn = args.database_url or DatabaseSettings().url.get_secret_value()
    if args.check:
        return _check(dsn, args.wait)
    try:
        applied = asyncio.run(migrate(dsn))
    except HubError as exc:
        print(f"hub-migrate: {exc.message}", file=sys.stderr)
        return 1
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "") + "; privileges set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
