"""Databases made and dropped around one test on the session's PostgreSQL cluster."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from hub_devstack.postgres import database_url_for


@contextlib.asynccontextmanager
async def fresh_database(postgres_admin_url: str, *, template: str | None = None) -> AsyncIterator[str]:
    """A new database (a copy of `template`, or empty) for one test, dropped afterwards; yields its URL."""
    name = f"hub_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await conn.close()
    try:
        yield database_url_for(postgres_admin_url, name)
    finally:
        conn = await asyncpg.connect(postgres_admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
