"""Every row of the matching-rules table (docs/reconciliation.md), judged by both selections of the one SQL
verdict: by operator id (the continuous join) and by time range (the report)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from hub_common.reconciliation.rules import BY_KEYS, IN_RANGE
from support.reconciliation_seed import T0, compensation, feed_covered, hub_tx, op_record

Seed = Callable[[asyncpg.Connection], Awaitable[None]]
COVERED = T0 + timedelta(hours=1)
LATE = COVERED + timedelta(seconds=1)


def both(hub: dict[str, Any] | None, op: dict[str, Any] | None) -> Seed:
    async def seed(conn: asyncpg.Connection) -> None:
        if hub is not None:
            await hub_tx(conn, "r", **hub)
        if op is not None:
            await op_record(conn, "r", **op)

    return seed


def failed_bet(cancel: str | None, *, bet_at_operator: bool, cancel_at_operator: bool) -> Seed:
    async def seed(conn: asyncpg.Connection) -> None:
        tx = await hub_tx(conn, "r", status="FAILED")
        if cancel is not None:
            await compensation(conn, tx, "r", status=cancel)
        if bet_at_operator:
            await op_record(conn, "r")
        if cancel_at_operator:
            await op_record(conn, "r:cancel", type="REFUND", created=T0 + timedelta(minutes=5))

    return seed


# name: (operator id judged, seed, verdict) -- one entry per row of the table in docs/reconciliation.md.
RULES: dict[str, tuple[str, Seed, list[str]]] = {
    "completed, operator agrees": ("r", both({}, {}), ["MATCHED"]),
    "completed, operator has nothing": ("r", both({}, None), ["MISSING_IN_OPERATOR"]),
    "completed, other amount": ("r", both({}, {"amount": 90}), ["AMOUNT_MISMATCH"]),
    "completed, other currency": ("r", both({}, {"currency": "USD"}), ["CURRENCY_MISMATCH"]),
    "completed, operator status not COMPLETED": ("r", both({}, {"status": "REVERSED"}), ["STATUS_MISMATCH"]),
    "completed, amount and currency differ": (
        "r",
        both({}, {"amount": 90, "currency": "USD"}),
        ["AMOUNT_MISMATCH", "CURRENCY_MISMATCH"],
    ),
    "completed after the feed's coverage": ("r", both({"completed": LATE}, None), ["AWAITING_FEED"]),
    "no operator call, operator has nothing": ("r", both({"type": "REFUND", "sent": False}, None), ["NO_EFFECT"]),
    "no operator call, operator has a record": (
        "r",
        both({"type": "REFUND", "sent": False}, {"type": "REFUND"}),
        ["STATUS_MISMATCH"],
    ),
    "rejected, operator has nothing": ("r", both({"status": "REJECTED"}, None), ["NO_EFFECT"]),
    "rejected, operator has a record": ("r", both({"status": "REJECTED"}, {}), ["STATUS_MISMATCH"]),
    "failed win, operator has nothing": ("r", both({"status": "FAILED", "type": "WIN"}, None), ["NO_EFFECT"]),
    "failed win, operator applied it": (
        "r",
        both({"status": "FAILED", "type": "WIN"}, {"type": "WIN"}),
        ["STATUS_MISMATCH"],
    ),
    "in flight": ("r", both({"status": "PROCESSING"}, {}), ["IN_FLIGHT"]),
    "operator only": ("r", both(None, {}), ["MISSING_IN_HUB"]),
    "failed bet, operator has neither": (
        "r",
        failed_bet("COMPLETED", bet_at_operator=False, cancel_at_operator=True),
        ["NO_EFFECT"],
    ),
    "failed bet, operator has bet and cancel": (
        "r",
        failed_bet("COMPLETED", bet_at_operator=True, cancel_at_operator=True),
        ["CANCELLED"],
    ),
    "failed bet, cancel still pending": (
        "r",
        failed_bet("PENDING", bet_at_operator=True, cancel_at_operator=False),
        ["IN_FLIGHT"],
    ),
    "failed bet, cancel refused": (
        "r",
        failed_bet("FAILED", bet_at_operator=True, cancel_at_operator=False),
        ["STATUS_MISMATCH"],
    ),
    "failed bet without a cancel, operator applied it": (
        "r",
        failed_bet(None, bet_at_operator=True, cancel_at_operator=False),
        ["STATUS_MISMATCH"],
    ),
    "cancel applied": (
        "r:cancel",
        failed_bet("COMPLETED", bet_at_operator=True, cancel_at_operator=True),
        ["MATCHED"],
    ),
    "cancel confirmed, operator has no record": (
        "r:cancel",
        failed_bet("COMPLETED", bet_at_operator=False, cancel_at_operator=False),
        ["MISSING_IN_OPERATOR"],
    ),
    "cancel pending, operator has nothing yet": (
        "r:cancel",
        failed_bet("PENDING", bet_at_operator=False, cancel_at_operator=False),
        ["IN_FLIGHT"],
    ),
    "cancel refused, operator has nothing": (
        "r:cancel",
        failed_bet("FAILED", bet_at_operator=False, cancel_at_operator=False),
        ["NO_EFFECT"],
    ),
    "cancel refused, operator applied it": (
        "r:cancel",
        failed_bet("FAILED", bet_at_operator=False, cancel_at_operator=True),
        ["STATUS_MISMATCH"],
    ),
}


@pytest.mark.parametrize("name", list(RULES))
async def test_rule(name: str, database_url: str) -> None:
    key, seed, verdict = RULES[name]
    conn = await asyncpg.connect(database_url)
    try:
        await seed(conn)
        await feed_covered(conn, COVERED)
        by_key = await conn.fetch(BY_KEYS, COVERED, [key])
        in_range = await conn.fetch(IN_RANGE, COVERED, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    finally:
        await conn.close()
    assert {r["key"] or r["op_key"]: list(r["verdict"]) for r in by_key}[key] == verdict
    assert {r["key"] or r["op_key"]: list(r["verdict"]) for r in in_range}[key] == verdict
