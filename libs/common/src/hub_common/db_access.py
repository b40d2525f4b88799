"""Who may do what in PostgreSQL: a migration owner, one role per service and one for hubctl.

`PRIVILEGES` is the one declarative matrix (role -> table -> statements). `hub-migrate` applies it after the
migrations, idempotently and in one transaction: everything is revoked from the service roles, then exactly
the matrix is granted (plus USAGE on the sequences behind the columns a role inserts into). A table that has
no entry here stops `hub-migrate`: a migration that adds a table must add its row to this matrix in the same
change (docs/security.md). Only the owner (who runs the migrations) may UPDATE, DELETE or TRUNCATE `audit_log`,
and a trigger refuses even the owner unless it is disabled on purpose.

The roles themselves are created outside the migrations (they are cluster-wide and carry passwords): by the
platform team in production, by the devstack and the tests locally (`ensure_roles`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import asyncpg

from hub_common.errors import FatalError

Privilege = Literal["SELECT", "INSERT", "UPDATE", "DELETE"]

OWNER = "hub_owner"
GATEWAY = "hub_gateway"
LEDGER = "hub_ledger"
DISPATCHER = "hub_dispatcher"
RECONCILER = "hub_reconciler"
HUBCTL = "hub_hubctl"

# Component name (as in logs, metrics and hub_common.kafka_access) -> its database role.
ROLE_BY_COMPONENT: Mapping[str, str] = {
    "gateway": GATEWAY,
    "ledger": LEDGER,
    "webhook-dispatcher": DISPATCHER,
    "reconciler": RECONCILER,
    "hubctl": HUBCTL,
}
SERVICE_ROLES = tuple(ROLE_BY_COMPONENT.values())

# `hub-migrate --check` (the init containers that hold a service back until its migrations are applied) runs
# with the service's own role: it reads the migration log.
_SCHEMA: dict[str, tuple[Privilege, ...]] = {"schema_migrations": ("SELECT",)}

# The operator budget shared by every process that calls the operator (hub_common.operator.budget): the row
# lock (SELECT ... FOR UPDATE needs UPDATE), the grant log and the waiter registry.
_BUDGET: dict[str, tuple[Privilege, ...]] = {
    "operator_budget": ("SELECT", "INSERT", "UPDATE"),
    "operator_budget_grants": ("SELECT", "INSERT", "DELETE"),
    "operator_budget_waiters": ("SELECT", "INSERT", "UPDATE", "DELETE"),
}

PRIVILEGES: Mapping[str, Mapping[str, tuple[Privilege, ...]]] = {
    GATEWAY: {
        **_SCHEMA,
        "transactions": ("SELECT", "INSERT"),
        # An expired key is cleared before its scope/key is admitted again.
        "idempotency_keys": ("SELECT", "INSERT", "DELETE"),
        "audit_log": ("INSERT",),
        **_BUDGET,
    },
    LEDGER: {
        **_SCHEMA,
        "transactions": ("SELECT", "INSERT", "UPDATE"),
        "idempotency_keys": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "event_outbox": ("SELECT", "INSERT", "UPDATE"),
        # Gauges count deliveries by status.
        "webhook_outbox": ("SELECT",),
        "audit_log": ("INSERT",),
        "refund_tombstones": ("SELECT", "INSERT"),
        "ledger_compensations": ("SELECT", "INSERT", "UPDATE"),
        **_BUDGET,
    },
    DISPATCHER: {
        **_SCHEMA,
        # DELETE: the retention purge of delivered rows (the table's owner purges it).
        "webhook_outbox": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "transactions": ("SELECT",),
    },
    RECONCILER: {
        **_SCHEMA,
        # The Hub side of the join and of the reports (a cancelled BET's compensation decides its verdict).
        "transactions": ("SELECT",),
        "ledger_compensations": ("SELECT",),
        # Its own tables: the stored operator feed (retention deletes old rows) and its cursor, the join state,
        # the daily runs.
        "operator_transactions": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "operator_feed_state": ("SELECT", "INSERT", "UPDATE"),
        "reconciliation_join": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "reconciliation_runs": ("SELECT", "INSERT", "UPDATE"),
        **_BUDGET,
    },
    HUBCTL: {
        **_SCHEMA,
        # tx resolve/replay, keys cleanup, webhooks redrive, dlq replay, and the runbook's SQL procedures.
        # INSERT: `recovery apply` re-creates the rows (and keys) a restored backup lacks, from hub.commands.
        "transactions": ("SELECT", "INSERT", "UPDATE"),
        "idempotency_keys": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "event_outbox": ("SELECT", "INSERT"),
        # tx resolve finishes through the ledger's own statement (hub_common.transitions), which may tombstone.
        "refund_tombstones": ("INSERT",),
        # DELETE: the runbook's weekly purge of old delivered webhooks.
        "webhook_outbox": ("SELECT", "INSERT", "UPDATE", "DELETE"),
        "audit_log": ("SELECT", "INSERT"),
        # tx resolve of a BET the operator never applied queues its cancel (the ledger's own finish statement);
        # `recovery apply` queues again the cancel of a FAILED bet it restores (the ledger sends both); hubctl
        # reconcile reads compensations for the shared range report.
        "ledger_compensations": ("SELECT", "INSERT"),
        # hubctl reconcile: the shared range report reads the stored feed and its coverage.
        "operator_transactions": ("SELECT",),
        "operator_feed_state": ("SELECT",),
        **_BUDGET,
    },
}

# Database functions (migration 011) -> the roles that may EXECUTE them (each runs with its caller's table
# privileges: SECURITY INVOKER). EXECUTE on every function of the schema is revoked from PUBLIC and every service
# role first, so a role calls exactly what is listed here (trigger functions need no EXECUTE to fire).
BUDGET_GRANT = "operator_budget_grant(text, uuid, integer, interval, bigint, interval, bigint, text, boolean)"
LEDGER_BEGIN = "ledger_lock_for_begin(uuid[], text[])"
ROUTINES: Mapping[str, tuple[str, ...]] = {
    # Whoever calls the operator spends its budget: the ledger, the gateway's balance reads, the reconciler's
    # feed reads, hubctl.
    BUDGET_GRANT: (GATEWAY, LEDGER, RECONCILER, HUBCTL),
    LEDGER_BEGIN: (LEDGER,),
}

# Tables no service role touches at all (only the owner, i.e. hub-migrate).
OWNER_ONLY: frozenset[str] = frozenset()
COVERED = frozenset(OWNER_ONLY | {table for tables in PRIVILEGES.values() for table in tables})


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def apply_privileges(conn: asyncpg.Connection, *, schema: str = "public") -> None:
    """Make the service roles' table privileges exactly `PRIVILEGES`, and their EXECUTE rights exactly `ROUTINES`
    (run by `hub-migrate` as the owner)."""
    tables = {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)}
    uncovered, stale = sorted(tables - COVERED), sorted(COVERED - tables)
    if uncovered:
        raise FatalError(
            f"tables without an entry in hub_common.db_access.PRIVILEGES: {', '.join(uncovered)}; "
            "say which roles may use them (or list them in OWNER_ONLY)",
            tables=uncovered,
        )
    if stale:
        raise FatalError(f"hub_common.db_access.PRIVILEGES names tables that do not exist: {', '.join(stale)}")
    present = {
        r["rolname"] for r in await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)", SERVICE_ROLES)
    }
    absent = [role for role in SERVICE_ROLES if role not in present]
    if absent:
        raise FatalError(
            f"database roles missing: {', '.join(absent)}; create them before hub-migrate (docs/security.md)",
            roles=absent,
        )
    sch = _ident(schema)
    found = await conn.fetchval(
        "SELECT array_agg(f) FROM unnest($1::text[]) AS f WHERE to_regprocedure($2 || '.' || f) IS NOT NULL",
        list(ROUTINES),
        schema,
    )
    missing = sorted(set(ROUTINES) - set(found or ()))
    if missing:
        raise FatalError(f"hub_common.db_access.ROUTINES names functions that do not exist: {', '.join(missing)}")
    statements = [
        f"REVOKE CREATE ON SCHEMA {sch} FROM PUBLIC",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {sch} FROM PUBLIC",
        f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {sch} FROM PUBLIC",
    ]
    for role in SERVICE_ROLES:
        r = _ident(role)
        statements += [
            f"REVOKE ALL ON ALL TABLES IN SCHEMA {sch} FROM {r}",
            f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {sch} FROM {r}",
            f"REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {sch} FROM {r}",
            f"GRANT USAGE ON SCHEMA {sch} TO {r}",
        ]
        for table, privileges in PRIVILEGES[role].items():
            statements.append(f"GRANT {', '.join(privileges)} ON {sch}.{_ident(table)} TO {r}")
            if "INSERT" in privileges:
                statements += [f"GRANT USAGE ON SEQUENCE {seq} TO {r}" for seq in await _sequences(conn, schema, table)]
    for function, roles in ROUTINES.items():
        statements.append(f"GRANT EXECUTE ON FUNCTION {sch}.{function} TO {', '.join(_ident(r) for r in roles)}")
    async with conn.transaction():
        for statement in statements:
            await conn.execute(statement)


async def _sequences(conn: asyncpg.Connection, schema: str, table: str) -> list[str]:
    """The sequences behind `table`'s serial/identity columns, as qualified identifiers."""
    rows = await conn.fetch(
        """SELECT pg_get_serial_sequence(quote_ident($1) || '.' || quote_ident($2), a.attname) AS seq
             FROM pg_attribute a
            WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass AND a.attnum > 0
              AND NOT a.attisdropped""",
        schema,
        table,
    )
    return [r["seq"] for r in rows if r["seq"] is not None]


async def ensure_roles(conn: asyncpg.Connection, passwords: Mapping[str, str]) -> None:
    """Create (or update the password of) each login role in `passwords`, never with more than LOGIN.

    Needs a connection allowed to create roles (a superuser or CREATEROLE); the development stack and the
    tests use it. The owner is such a role too: it owns the schema, nothing more.
    """
    options = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
    for role, password in passwords.items():
        # Passwords cannot be bind parameters in utility statements; quote_literal escapes them server-side.
        literal = await conn.fetchval("SELECT quote_literal($1)", password)
        try:
            await conn.execute(f"CREATE ROLE {_ident(role)} WITH {options} PASSWORD {literal}")
        except asyncpg.DuplicateObjectError:
            await conn.execute(f"ALTER ROLE {_ident(role)} WITH {options} PASSWORD {literal}")
