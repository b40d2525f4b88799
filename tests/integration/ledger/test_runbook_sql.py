"""Every runbook SQL statement about the Hub's tables runs unchanged against the migrated schema.

The statements are parsed out of the runbook at test time (```sql blocks, `psql -c "..."` commands and the
SQL typed at an interactive psql prompt in ```bash blocks), so a query added to the runbook is covered
without touching this file. `<...>` placeholders are replaced by ids of real rows, and a statement with a
placeholder must find its row.

The statements run as the SRE role (hub_hubctl) inside a transaction that is rolled back: the runbook's
"kill idle connections" query must not reach other sessions on the shared development cluster, and its
UPDATE/DELETE statements must not change the rows the next statement is checked against.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from support.roles import RoleDbSettings
from support.runbook import SUBJECT_RE, SUBJECTS, read_runbook, run_runbook, runbook_statements


@pytest.fixture
async def runbook_conn(role_db_settings: RoleDbSettings) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the SRE role (`hub_hubctl`, hub_common.db_access): the runbook's procedures must work
    with the privileges an SRE holds, no more."""
    conn = await asyncpg.connect(role_db_settings("hubctl").url.get_secret_value())
    try:
        yield conn
    finally:
        await conn.close()


def test_the_runbook_yields_statements_for_every_subject() -> None:
    statements = runbook_statements(read_runbook())
    touched = {m for s in statements for m in SUBJECT_RE.findall(s.sql)}
    assert touched == set(SUBJECTS), f"no runbook statement found for {set(SUBJECTS) - touched}"
    assert len(statements) >= 30, "the parser found fewer statements than the runbook holds"


async def test_every_runbook_statement_runs_unchanged(database_url: str, runbook_conn: asyncpg.Connection) -> None:
    owner = await asyncpg.connect(database_url)
    try:
        failures, break_glass = await run_runbook(runbook_conn, owner)
    finally:
        await owner.close()
    assert break_glass == 1, "the runbook's one break-glass statement (manual transaction delete) was not found"
    assert not failures, "runbook statements that do not work against the schema:\n\n" + "\n\n".join(failures)
