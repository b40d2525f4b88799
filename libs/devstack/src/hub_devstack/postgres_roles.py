"""The Hub's database roles on a development cluster: generated passwords, owned databases, per-role URLs.

Roles are cluster-wide, databases are not: one `DatabaseRoles` per cluster (the tests' session, one `make up`),
any number of databases owned by `hub_owner` on it. Production creates the roles by other means (docs/security.md).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from hub_common.db import migrate
from hub_common.db_access import OWNER, ROLE_BY_COMPONENT, SERVICE_ROLES, ensure_roles


@dataclass(frozen=True)
class DatabaseRoles:
    """Passwords of the owner and of every service role, and how to build their URLs."""

    admin_url: str
    passwords: Mapping[str, str]

    @classmethod
    def generate(cls, admin_url: str) -> DatabaseRoles:
        return cls(admin_url, {role: secrets.token_urlsafe(32) for role in (OWNER, *SERVICE_ROLES)})

    def url(self, role: str, database: str) -> str:
        """`role`'s URL to `database`, on the admin URL's host and port."""
        parts = urlsplit(self.admin_url)
        host = parts.netloc.rsplit("@", 1)[-1]
        credentials = f"{quote(role, safe='')}:{quote(self.passwords[role], safe='')}"
        return urlunsplit(parts._replace(netloc=f"{credentials}@{host}", path="/" + database))

    def owner_url(self, database: str) -> str:
        return self.url(OWNER, database)

    def component_url(self, component: str, database: str) -> str:
        """The URL a component (`gateway`, `ledger`, `webhook-dispatcher`, `reconciler`, `hubctl`) connects with."""
        return self.url(ROLE_BY_COMPONENT[component], database)

    async def provision(self) -> None:
        """Create the roles, or reset their passwords to ours (a reused cluster keeps its roles)."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            await ensure_roles(conn, self.passwords)
        finally:
            await conn.close()

    async def create_database(self, name: str, *, template: str | None = None, migrated: bool = True) -> str:
        """Create `name` owned by the owner role if missing (copied from `template` when given), apply the
        migrations and grants as the owner unless copied; returns the owner's URL."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                source = f' TEMPLATE "{template}"' if template else ""
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # a concurrent launcher won
                    await conn.execute(f'CREATE DATABASE "{name}" OWNER "{OWNER}"{source}')
        finally:
            await conn.close()
        url = self.owner_url(name)
        if migrated and template is None:
            await migrate(url)
        return url

    async def drop_database(self, name: str) -> None:
        conn = await asyncpg.connect(self.admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
