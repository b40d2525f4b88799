"""Every runbook SQL statement about the Hub's tables runs unchanged against the migrated schema.

The statements are parsed out of the runbook at test time (```sql blocks, `psql -c "..."` commands and the
SQL typed at an interactive psql prompt in ```bash blocks), so a query added to the runbook is covered
without touching this file. `<...>` placeholders are replaced by ids of real rows, and a statement with a
placeholder must find its row.

The statements run as a least-privilege role inside a transaction that is rolled back: the runbook's
"kill idle connections" query must not reach other sessions on the shared development cluster, and its
UPDATE/DELETE statements must not change the rows the next statement is checked against.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from support.runbook import (
    SUBJECT_RE,
    SUBJECTS,
    failing_statements,
    least_privilege_connection,
    read_runbook,
    runbook_statements,
    seed,
)


@pytest.fixture
async def runbook_conn(database_url: str, postgres_admin_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the seeded database as a role with table privileges only (not a superuser)."""
    async with least_privilege_connection(postgres_admin_url, database_url) as conn:
        yield conn


def test_the_runbook_yields_statements_for_every_subject() -> None:
    statements = runbook_statements(read_runbook())
    touched = {m for s in statements for m in SUBJECT_RE.findall(s.sql)}
    assert touched == set(SUBJECTS), f"no runbook statement found for {set(SUBJECTS) - touched}"
    assert len(statements) >= 30, "the parser found fewer statements than the runbook holds"


async def test_every_runbook_statement_runs_unchanged(database_url: str, runbook_conn: asyncpg.Connection) -> None:
    owner = await asyncpg.connect(database_url)
    try:
        seeded = await seed(owner)
    finally:
        await owner.close()

    failures = await failing_statements(runbook_conn, seeded)
    assert not failures, "runbook statements that do not work against the schema:\n\n" + "\n\n".join(failures)
