"""The date-range report on PostgreSQL: exactly the seeded mismatches, consistent rows left out, a summary file,
spreadsheet-safe cells, and entries matched across slice and day edges."""

from __future__ import annotations

import csv
from datetime import date, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from hub_common.reconciliation.report import FeedNotStartedError, InvalidRangeError, RangeReport
from support.reconciliation_seed import T0, cancel_of, compensation, feed_covered, hub_tx, op_id, op_record
from support.roles import RoleDbSettings

DAY = date(2024, 1, 15)


async def seed(conn: asyncpg.Connection) -> None:
    await hub_tx(conn, "ok")
    await op_record(conn, op_id("ok"))
    await hub_tx(conn, "amount", amount=100)
    await op_record(conn, op_id("amount"), amount=150)
    await hub_tx(conn, "=cmd|'/c calc'!A1", currency="EUR")  # a refId a spreadsheet would run
    await op_record(conn, op_id("=cmd|'/c calc'!A1"), currency="USD")
    await hub_tx(conn, "lost")
    await op_record(conn, op_id("ghost"))
    await hub_tx(conn, "rejected-applied", status="REJECTED")
    await op_record(conn, op_id("rejected-applied"))
    # Consistent: they must not appear.
    await hub_tx(conn, "tombstone", type="REFUND", sent=False)
    await hub_tx(conn, "refund-of-rejected", type="REFUND", sent=False)
    await hub_tx(conn, "rejected", status="REJECTED")
    bet = await hub_tx(conn, "cancelled", status="FAILED")
    await compensation(conn, bet, "cancelled", status="COMPLETED")
    await op_record(conn, op_id("cancelled"))
    await op_record(conn, cancel_of("cancelled"), type="REFUND", created=T0 + timedelta(hours=20))
    await hub_tx(conn, "in-flight", status="PROCESSING")
    # Hub row at 23:59 the day before, operator record on the day: that day's entry, matched, not missing here.
    await hub_tx(conn, "edge", created=T0 - timedelta(hours=10, minutes=1))
    await op_record(conn, op_id("edge"), created=T0 - timedelta(hours=9))
    # Hub row on the day, operator record the next day (slow operator): matched.
    await hub_tx(conn, "late", created=T0 + timedelta(hours=13, minutes=59))
    await op_record(conn, op_id("late"), created=T0 + timedelta(hours=14, minutes=1))
    await feed_covered(conn, T0 + timedelta(days=2))


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


async def test_report_lists_exactly_the_seeded_mismatches(
    database_url: str, role_db_settings: RoleDbSettings, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    # As `hubctl reconcile` runs it: the SRE role's read rights are enough.
    pool = await asyncpg.create_pool(role_db_settings("hubctl").url.get_secret_value(), min_size=1, max_size=2)
    try:
        await seed(conn)
        seen: list[tuple[int, int]] = []
        summary = await RangeReport(pool, report_dir=tmp_path, slice_s=4 * 3600).run(
            DAY, DAY, progress=lambda done, total: seen.append((done, total))
        )
    finally:
        await pool.close()
        await conn.close()
    rows = read_csv(summary["report"])
    found = sorted((r["operator_id"], r["kind"]) for r in rows)
    assert found == sorted(
        [
            (op_id("amount"), "AMOUNT_MISMATCH"),
            (op_id("=cmd|'/c calc'!A1"), "CURRENCY_MISMATCH"),
            (op_id("lost"), "MISSING_IN_OPERATOR"),
            (op_id("ghost"), "MISSING_IN_HUB"),
            (op_id("rejected-applied"), "STATUS_MISMATCH"),
        ]
    )
    assert all(not r["ref_id"].startswith("=") for r in rows)
    assert summary["byKind"] == {
        "AMOUNT_MISMATCH": 1,
        "CURRENCY_MISMATCH": 1,
        "MISSING_IN_HUB": 1,
        "MISSING_IN_OPERATOR": 1,
        "STATUS_MISMATCH": 1,
    }
    assert summary["inFlight"] == 1
    assert summary["complete"] is True
    assert summary["awaitingFeed"] == 0
    assert summary["cancelled"] == 1
    assert summary["matched"] == 3  # ok, late and the cancel itself
    assert summary["noOperatorEffect"] == 3
    assert summary["hubTransactions"] == 11
    assert summary["totals"]["EUR"]["hub"]["BET"] == {"count": 5, "amountCents": 500}
    assert seen == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)]
    assert Path(summary["report"]).is_absolute()
    assert orjson.loads(read_bytes(summary["summary"]))["byKind"] == summary["byKind"]


async def test_report_refuses_a_reversed_range_and_a_feed_that_never_ran(
    role_db_settings: RoleDbSettings, tmp_path: Path
) -> None:
    # As the reconciler's daily run does it, with its own role.
    pool = await asyncpg.create_pool(role_db_settings("reconciler").url.get_secret_value(), min_size=1, max_size=2)
    try:
        report = RangeReport(pool, report_dir=tmp_path)
        with pytest.raises(InvalidRangeError):
            await report.run(DAY, DAY - timedelta(days=1))
        with pytest.raises(FeedNotStartedError):
            await report.run(DAY, DAY)
    finally:
        await pool.close()
