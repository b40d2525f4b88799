"""Least privilege in PostgreSQL: each role holds exactly its row of the matrix, every other statement fails.

Connects as each role (with its own password) to a migrated database and tries SELECT, INSERT, UPDATE, DELETE
and TRUNCATE on every table; what the matrix does not grant must be refused by the server. The audit log is
append-only for everyone, and only its owner could ever lift that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from pydantic import SecretStr

from hub_common import db_access
from hub_common.db import create_pool, migrate
from hub_common.db_access import (
    LEDGER,
    LEDGER_BEGIN,
    OWNER,
    PRIVILEGES,
    ROLE_BY_COMPONENT,
    ROUTINES,
    SERVICE_ROLES,
    apply_privileges,
)
from hub_common.errors import FatalError
from hub_common.settings import DatabaseSettings
from hub_devstack.postgres_roles import DatabaseRoles

STATEMENTS = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")


async def _columns(conn: asyncpg.Connection) -> dict[str, str]:
    """Each public table and one of its columns (an UPDATE needs a column to name)."""
    rows = await conn.fetch(
        """SELECT c.table_name, min(c.column_name) AS col FROM information_schema.columns c
             JOIN pg_tables t ON t.tablename = c.table_name AND t.schemaname = 'public'
            WHERE c.table_schema = 'public' GROUP BY c.table_name"""
    )
    return {r["table_name"]: r["col"] for r in rows}


def _sql(statement: str, table: str, column: str) -> str:
    # Every statement touches no row and reads no column: the server checks the one privilege at stake, first.
    return {
        "SELECT": f'SELECT 1 FROM "{table}" LIMIT 0',  # noqa: S608 - quoted names read from the catalogue
        "INSERT": f'INSERT INTO "{table}" ("{column}") SELECT NULL WHERE false',
        "UPDATE": f'UPDATE "{table}" SET "{column}" = DEFAULT WHERE false',  # noqa: S608 - quoted names read from the catalogue
        "DELETE": f'DELETE FROM "{table}" WHERE false',  # noqa: S608 - quoted names read from the catalogue
        "TRUNCATE": f'TRUNCATE "{table}"',
    }[statement]


async def _allowed(conn: asyncpg.Connection, sql: str) -> bool:
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(sql)
        return True
    except asyncpg.InsufficientPrivilegeError:
        return False
    finally:
        await tx.rollback()


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


@pytest.mark.parametrize("component", list(ROLE_BY_COMPONENT))
async def test_each_role_may_run_exactly_the_statements_of_its_matrix_row(
    component: str, db_roles: DatabaseRoles, database_name: str, owner: asyncpg.Connection
) -> None:
    role = ROLE_BY_COMPONENT[component]
    columns = await _columns(owner)
    conn = await asyncpg.connect(db_roles.component_url(component, database_name))
    try:
        assert await conn.fetchval("SELECT current_user") == role
        unexpected = []
        for table, column in sorted(columns.items()):
            granted = set(PRIVILEGES[role].get(table, ()))
            for statement in STATEMENTS:
                # TRUNCATE audit_log would be refused by the trigger too; only the privilege is at stake here.
                if await _allowed(conn, _sql(statement, table, column)) != (statement in granted):
                    unexpected.append(f"{statement} {table}: {'allowed' if statement not in granted else 'refused'}")
        assert unexpected == []
        # No role may create objects, in the schema or the database.
        assert not await _allowed(conn, "CREATE TABLE stray (id int)")
        assert not await conn.fetchval(
            "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = $1", role
        )
    finally:
        await conn.close()


@pytest.mark.parametrize("component", list(ROLE_BY_COMPONENT))
async def test_each_role_may_execute_exactly_its_functions(
    component: str, db_roles: DatabaseRoles, database_name: str, owner: asyncpg.Connection
) -> None:
    role = ROLE_BY_COMPONENT[component]
    functions = [
        r["signature"]
        for r in await owner.fetch(
            """SELECT p.oid::regprocedure::text AS signature FROM pg_proc p
                 JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"""
        )
    ]
    # As the catalogue spells each of the matrix's functions (every one of them exists).
    spelled = {f: await owner.fetchval("SELECT $1::regprocedure::text", f) for f in ROUTINES}
    conn = await asyncpg.connect(db_roles.component_url(component, database_name))
    try:
        executable = {
            f for f in functions if await conn.fetchval("SELECT has_function_privilege($1::regprocedure, 'EXECUTE')", f)
        }
    finally:
        await conn.close()
    assert executable == {spelled[f] for f, roles in ROUTINES.items() if role in roles}


@pytest.mark.parametrize("role", SERVICE_ROLES)
async def test_no_service_role_can_rewrite_or_remove_the_audit_log(
    role: str, db_roles: DatabaseRoles, database_name: str, owner: asyncpg.Connection
) -> None:
    await owner.execute(
        "INSERT INTO audit_log (entity, entity_id, action, actor) VALUES ('transaction', 'x', 'TEST', 'it')"
    )
    conn = await asyncpg.connect(db_roles.url(role, database_name))
    try:
        for sql in (
            "UPDATE audit_log SET actor = 'someone else'",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
            "ALTER TABLE audit_log DISABLE TRIGGER USER",
            "DROP TRIGGER audit_log_no_update ON audit_log",
            "DROP TABLE audit_log",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
    finally:
        await conn.close()
    assert await owner.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'it'") == 1


async def test_even_the_owner_cannot_rewrite_the_audit_log_without_disabling_its_triggers(
    owner: asyncpg.Connection,
) -> None:
    assert await owner.fetchval("SELECT current_user") == OWNER
    await owner.execute(
        "INSERT INTO audit_log (entity, entity_id, action, actor) VALUES ('transaction', 'x', 'TEST', 'it')"
    )
    for sql in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(asyncpg.RaiseError, match="audit_log is append-only"):
            await owner.execute(sql)
    assert await owner.fetchval("SELECT count(*) FROM audit_log") == 1


async def test_services_refuse_to_connect_as_a_superuser(postgres_admin_url: str, database_url: str) -> None:
    admin = DatabaseSettings(url=SecretStr(postgres_admin_url))
    with pytest.raises(FatalError, match="as superuser 'postgres': services must use their own role"):
        _ = await create_pool(admin)
    pool = await create_pool(DatabaseSettings(url=SecretStr(database_url)))  # the owner is no superuser
    await pool.close()


async def test_a_table_without_a_matrix_entry_stops_hub_migrate(owner: asyncpg.Connection, database_url: str) -> None:
    await owner.execute("CREATE TABLE reconciler_scratch (id int PRIMARY KEY)")
    with pytest.raises(FatalError, match=r"tables without an entry in .*PRIVILEGES: reconciler_scratch"):
        await apply_privileges(owner)
    with pytest.raises(FatalError, match="reconciler_scratch"):
        await migrate(database_url)


async def test_a_function_the_matrix_names_that_does_not_exist_stops_hub_migrate(
    owner: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_access, "ROUTINES", {**ROUTINES, "missing_function(integer)": (LEDGER,)})
    with pytest.raises(FatalError, match=r"ROUTINES names functions that do not exist: missing_function\(integer\)"):
        await apply_privileges(owner)


async def test_a_hand_made_execute_grant_is_undone(
    owner: asyncpg.Connection, db_roles: DatabaseRoles, database_name: str
) -> None:
    await owner.execute(f"GRANT EXECUTE ON FUNCTION {LEDGER_BEGIN} TO hub_dispatcher")
    await apply_privileges(owner)
    conn = await asyncpg.connect(db_roles.component_url("webhook-dispatcher", database_name))
    try:
        assert not await conn.fetchval("SELECT has_function_privilege($1::regprocedure, 'EXECUTE')", LEDGER_BEGIN)
    finally:
        await conn.close()


async def test_privileges_are_reapplied_exactly_whatever_was_granted_by_hand(
    owner: asyncpg.Connection, db_roles: DatabaseRoles, database_name: str
) -> None:
    await owner.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO hub_reconciler")
    await apply_privileges(owner)
    conn = await asyncpg.connect(db_roles.component_url("reconciler", database_name))
    try:
        assert not await _allowed(conn, "DELETE FROM transactions WHERE false")
        assert await _allowed(conn, "SELECT 1 FROM transactions LIMIT 0")
    finally:
        await conn.close()


async def test_every_table_of_the_migrated_schema_has_a_matrix_entry(owner: asyncpg.Connection) -> None:
    tables = set(await _columns(owner))
    covered = {table for rows in PRIVILEGES.values() for table in rows} | {"schema_migrations"}
    assert tables == covered
