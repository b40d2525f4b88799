"""Date-range reconciliation: Hub rows from PostgreSQL against the operator feed, written as a CSV report."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from pydantic import SecretStr

from hub_common.settings import DatabaseSettings
from hub_reconciler.errors import InvalidRangeError
from hub_reconciler.settings import OperatorFeedSettings, ReconcilerSettings
from hub_reconciler.standalone import reconcile_dates
from support.apps import serve
from support.roles import RoleDbSettings

DAY = date(2024, 1, 15)


def at(hour: int, day: int = 15) -> datetime:
    return datetime(2024, 1, day, hour, tzinfo=UTC)


async def insert(conn: asyncpg.Connection, ref_id: str, status: str, amount: int, created: datetime) -> None:
    await conn.execute(
        """INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency,
                                     request_hash, status, created_at)
           VALUES ($1, 'rgs-demo', $2, 'BET', 'p-1', $3, 'EUR', 'h', $4, $5)""",
        uuid.uuid4(),
        ref_id,
        amount,
        status,
        created,
    )


def feed_app(items: list[dict[str, Any]], calls: list[dict[str, str]]) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        calls.append(dict(request.query))
        return web.json_response({"items": items, "nextCursor": None})

    app = web.Application()
    app.router.add_get("/v2/transactions", handle)
    return app


def item(ref_id: str, amount: int, created: datetime) -> dict[str, Any]:
    return {
        "transactionId": ref_id,
        "amountCents": amount,
        "currency": "EUR",
        "status": "COMPLETED",
        "createdAt": created.isoformat(),
    }


async def test_range_report_lists_every_mismatch(
    db_settings: DatabaseSettings, role_db_settings: RoleDbSettings, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        await insert(conn, "ok", "COMPLETED", 100, at(10))
        await insert(conn, "amount", "COMPLETED", 100, at(11))
        await insert(conn, "no-operator", "COMPLETED", 100, at(12))
        await insert(conn, "rejected", "REJECTED", 100, at(12))
        await insert(conn, "in-flight", "PROCESSING", 100, at(13))
        # Created just before midnight; the operator booked it just after: matched, not missing.
        await insert(conn, "edge", "COMPLETED", 100, at(23, day=14))
        await insert(conn, "other-day", "COMPLETED", 100, at(10, day=16))
    finally:
        await conn.close()
    items = [
        item("ok", 100, at(10)),
        item("amount", 150, at(11)),
        item("edge", 100, at(0)),
        item("no-hub", 100, at(14)),
        item("next-day", 100, at(0, day=16)),  # read for matching only: outside the range
    ]
    calls: list[dict[str, str]] = []
    async with serve(feed_app(items, calls)) as url:
        settings = ReconcilerSettings(
            database=role_db_settings("reconciler"),
            operator=OperatorFeedSettings(url=url, secret=SecretStr("s")),
            report_dir=tmp_path / "reconciliation-reports",
        )
        summary = await reconcile_dates(settings, DAY, DAY)
        with pytest.raises(InvalidRangeError):
            await reconcile_dates(settings, DAY, date(2024, 1, 14))

    assert calls[0]["from"] == "2024-01-14T23:00:00Z" and calls[0]["to"] == "2024-01-16T01:00:00Z"
    # Every feed page was charged to the operator budget the ledger replicas share (60/min, all endpoints).
    conn = await asyncpg.connect(db_settings.url.get_secret_value())
    try:
        granted = await conn.fetchval("SELECT count(*) FROM operator_budget_grants WHERE name = 'operator'")
    finally:
        await conn.close()
    assert granted == len(calls) >= 1
    path = Path(summary["report"])
    assert path.parent == tmp_path / "reconciliation-reports"
    assert path.name.startswith("reconciliation-2024-01-15_2024-01-15-") and path.suffix == ".csv"
    text = await asyncio.to_thread(path.read_text)
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert {(r["ref_id"], r["kind"]) for r in rows} == {
        ("amount", "AMOUNT_MISMATCH"),
        ("no-operator", "MISSING_IN_OPERATOR"),
        ("no-hub", "MISSING_IN_HUB"),
    }
    amount = next(r for r in rows if r["kind"] == "AMOUNT_MISMATCH")
    assert (amount["hub_amount_cents"], amount["operator_amount_cents"]) == ("100", "150")
    assert summary | {"report": None, "generatedAt": None} == {
        "from": "2024-01-15",
        "to": "2024-01-15",
        "report": None,
        "generatedAt": None,
        "hubTransactions": 5,
        "operatorRecords": 4,
        "matched": 3,
        "inFlight": 1,
        "mismatches": 3,
        "byKind": {"AMOUNT_MISMATCH": 1, "MISSING_IN_HUB": 1, "MISSING_IN_OPERATOR": 1},
    }
