"""Upgrading a database that holds transactions from before client isolation (migrations 008 and 009): every
existing row keeps the operator id it was sent under (its refId), tombstones get their client, refIds become
unique per client, and open transactions start with no lease."""

from __future__ import annotations

import uuid

import asyncpg

from hub_common.db import load_migrations, migrate
from hub_common.operator import operator_id
from hub_devstack.postgres_roles import DatabaseRoles

BEFORE = 8  # the first migration of the change


async def _migrated_before(conn: asyncpg.Connection) -> None:
    """The schema as it was, recorded as `hub-migrate` records it, so the real `migrate` continues from there."""
    await conn.execute(
        """CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                                           applied_at timestamptz NOT NULL DEFAULT now())"""
    )
    for m in load_migrations():
        if m.version < BEFORE:
            await conn.execute(m.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                m.version,
                m.name,
                m.checksum,
            )


async def _insert(
    conn: asyncpg.Connection,
    client: str,
    ref: str,
    tx_type: str,
    status: str,
    *,
    original_ref_id: str | None = None,
    sent_as: str | None = None,
) -> uuid.UUID:
    """A row as an admission writes it: before the change without an operator id, after it with one."""
    tx_id = uuid.uuid4()
    columns, values = "", ""
    if sent_as is not None:
        columns, values = ", operator_id", ", $7"
    await conn.execute(
        f"""INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, request_hash,
                                      status, original_ref_id{columns})
            VALUES ($1, $2, $3, $4, 'p-1', 100, 'EUR', 'h', $5, $6{values})""",  # noqa: S608 - literal column names
        tx_id,
        client,
        ref,
        tx_type,
        status,
        original_ref_id,
        *([sent_as] if sent_as is not None else []),
    )
    return tx_id


async def test_existing_rows_stay_valid_across_the_client_isolation_migrations(db_roles: DatabaseRoles) -> None:
    name = f"hub_upgrade_{uuid.uuid4().hex[:12]}"
    url = await db_roles.create_database(name, migrated=False)
    try:
        conn = await asyncpg.connect(url)
        try:
            await _migrated_before(conn)
            await _insert(conn, "rgs-demo", "bet-1", "BET", "COMPLETED")
            open_bet = await _insert(conn, "rgs-demo", "bet-2", "BET", "PROCESSING")
            refund = await _insert(conn, "rgs-demo", "refund-9", "REFUND", "COMPLETED", original_ref_id="bet-9")
            await conn.execute(
                "INSERT INTO refund_tombstones (ref_id, refund_transaction_id) VALUES ('bet-9', $1)", refund
            )
            applied = await migrate(url)
            assert [n for n in applied if int(n[:3]) >= BEFORE] == [
                m.name for m in load_migrations() if m.version >= BEFORE
            ]

            rows = {r["ref_id"]: r for r in await conn.fetch("SELECT * FROM transactions")}
            # Sent under their refId before the change: that stays the id the operator knows them by.
            assert {ref: r["operator_id"] for ref, r in rows.items()} == {
                "bet-1": "bet-1",
                "bet-2": "bet-2",
                "refund-9": "refund-9",
            }
            assert (rows["bet-2"]["lease_token"], rows["bet-2"]["lease_expires_at"]) == (0, None)
            tombstone = await conn.fetchrow("SELECT client_id, ref_id FROM refund_tombstones")
            assert tombstone is not None and dict(tombstone) == {"client_id": "rgs-demo", "ref_id": "bet-9"}

            # A writer from before the migration (an old pod in a rollout) still inserts; its row gets the id that
            # code sends the operator: the refId.
            old_writer = await _insert(conn, "rgs-demo", "bet-7", "BET", "PENDING")
            assert await conn.fetchval("SELECT operator_id FROM transactions WHERE id = $1", old_writer) == "bet-7"
            # Another client may now use the same refId (under its own operator id) ...
            await _insert(conn, "rgs-demo-2", "bet-1", "BET", "PENDING", sent_as=operator_id("rgs-demo-2", "bet-1"))
            # ... but a client's refId stays unique, and so does an operator id.
            taken = [
                ("rgs-demo", "bet-1", operator_id("rgs-demo", "bet-1")),
                ("rgs-demo-2", "bet-1", operator_id("rgs-demo-2", "bet-x")),
                ("rgs-demo-3", "bet-3", "bet-2"),
            ]
            for client, ref, sent_as in taken:
                try:
                    await _insert(conn, client, ref, "BET", "PENDING", sent_as=sent_as)
                except asyncpg.UniqueViolationError:
                    continue
                raise AssertionError(f"{client}/{ref} as {sent_as} admitted")
            assert open_bet in {r["id"] for r in rows.values()}
        finally:
            await conn.close()
    finally:
        await db_roles.drop_database(name)
