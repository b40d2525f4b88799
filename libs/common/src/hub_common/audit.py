"""The one way rows reach `audit_log` (append-only): who changed which entity, from what to what, and why.
(`os_user` is not written here: the column's default reads the connection's `hub.os_user`, which hubctl sets.)

Single rows go through `record`. Statements that write many rows in one round trip (the gateway's admission,
the ledger's grouped transitions) select their rows into `INSERT`, so the column list lives here only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from hub_common import db

COLUMNS = "entity, entity_id, action, actor, before, after, reason"
# Followed by `VALUES (...)` or `SELECT ...` of the seven columns, `before`/`after` as jsonb.
INSERT = f"INSERT INTO audit_log ({COLUMNS})"


def to_json(value: Mapping[str, Any] | None) -> str | None:
    """A `before`/`after` value as the text a `::jsonb` parameter takes (None stays SQL NULL)."""
    return orjson.dumps(value, default=str).decode() if value is not None else None


@dataclass(frozen=True)
class AuditEntry:
    entity: str
    entity_id: str
    action: str
    actor: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    reason: str | None


_VALUES = f"{INSERT} VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7)"


def _args(entry: AuditEntry) -> tuple[str, str, str, str, str | None, str | None, str | None]:
    return (
        entry.entity,
        entry.entity_id,
        entry.action,
        entry.actor,
        to_json(entry.before),
        to_json(entry.after),
        entry.reason,
    )


async def record(conn: db.Connection, entry: AuditEntry) -> None:
    """Write `entry` on `conn`, inside the caller's transaction: the audit row commits with the change."""
    await conn.execute(_VALUES, *_args(entry))


async def record_many(conn: db.Connection, entries: Iterable[AuditEntry]) -> None:
    """The audit rows of one change (one round trip per batch of rows), inside the caller's transaction."""
    rows = [_args(entry) for entry in entries]
    if rows:
        await conn.executemany(_VALUES, rows)
