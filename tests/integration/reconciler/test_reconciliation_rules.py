"""Every row of the matching-rules table (docs/reconciliation.md), judged by both selections of the one SQL
verdict: by operator id (the continuous join) and by time range (the report)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from hub_common.reconciliation.rules import BY_KEYS, IN_RANGE
from support.reconciliation_seed import T0, cancel_of, compensation, feed_covered, hub_tx, op_id, op_record

Seed = Callable[[asyncpg.Connection], Awaitable[None]]
COVERED = T0 + timedelta(hours=1)
LATE = COVERED + timedelta(seconds=1)
R, CANCEL = op_id("r"), cancel_of("r")


def both(hub: dict[str, Any] | None, op: dict[str, Any] | None) -> Seed:
    async def seed(conn: asyncpg.Connection) -> None:
        if hub is not None:
            await hub_tx(conn, "r", **hub)
        if op is not None:
            await op_record(conn, R, **op)

    return seed


def failed_bet(cancel: str | None, *, bet_at_operator: bool, cancel_at_operator: bool) -> Seed:
    async def seed(conn: asyncpg.Connection) -> None:
        tx = await hub_tx(conn, "r", status="FAILED")
        if cancel is not None:
            await compensation(conn, tx, "r", status=cancel)
        if bet_at_operator:
            await op_record(conn, R)
        if cancel_at_operator:
            await op_record(conn, CANCEL, type="REFUND", created=T0 + timedelta(minutes=5))

    return seed


# name: (operator id judged, seed, verdict) -- one entry per row of the table in docs/reconciliation.md.
RULES: dict[str, tuple[str, Seed, list[str]]] = {
    "completed, operator agrees": (R, both({}, {}), ["MATCHED"]),
    "completed, operator has nothing": (R, both({}, None), ["MISSING_IN_OPERATOR"]),
    "completed, other amount": (R, both({}, {"amount": 90}), ["AMOUNT_MISMATCH"]),
    "completed, other currency": (R, both({}, {"currency": "USD"}), ["CURRENCY_MISMATCH"]),
    "completed, operator status not COMPLETED": (R, both({}, {"status": "REVERSED"}), ["STATUS_MISMATCH"]),
    "completed, amount and currency differ": (
        R,
        both({}, {"amount": 90, "currency": "USD"}),
        ["AMOUNT_MISMATCH", "CURRENCY_MISMATCH"],
    ),
    "completed after the feed's coverage": (R, both({"completed": LATE}, None), ["AWAITING_FEED"]),
    "no operator call, operator has nothing": (R, both({"type": "REFUND", "sent": False}, None), ["NO_EFFECT"]),
    "no operator call, operator has a record": (
        R,
        both({"type": "REFUND", "sent": False}, {"type": "REFUND"}),
        ["STATUS_MISMATCH"],
    ),
    "rejected, operator has nothing": (R, both({"status": "REJECTED"}, None), ["NO_EFFECT"]),
    "rejected, operator has a record": (R, both({"status": "REJECTED"}, {}), ["STATUS_MISMATCH"]),
    "failed win, operator has nothing": (R, both({"status": "FAILED", "type": "WIN"}, None), ["NO_EFFECT"]),
    "failed win, operator applied it": (
        R,
        both({"status": "FAILED", "type": "WIN"}, {"type": "WIN"}),
        ["STATUS_MISMATCH"],
    ),
    "in flight": (R, both({"status": "PROCESSING"}, {}), ["IN_FLIGHT"]),
    "operator only": (R, both(None, {}), ["MISSING_IN_HUB"]),
    "failed bet, operator has neither": (
        R,
        failed_bet("COMPLETED", bet_at_operator=False, cancel_at_operator=True),
        ["NO_EFFECT"],
    ),
    "failed bet, operator has bet and cancel": (
        R,
        failed_bet("COMPLETED", bet_at_operator=True, cancel_at_operator=True),
        ["CANCELLED"],
    ),
    "failed bet, cancel still pending": (
        R,
        failed_bet("PENDING", bet_at_operator=True, cancel_at_operator=False),
        ["IN_FLIGHT"],
    ),
    "failed bet, cancel refused": (
        R,
        failed_bet("FAILED", bet_at_operator=True, cancel_at_operator=False),
        ["STATUS_MISMATCH"],
    ),
    "failed bet without a cancel, operator applied it": (
        R,
        failed_bet(None, bet_at_operator=True, cancel_at_operator=False),
        ["STATUS_MISMATCH"],
    ),
    "cancel applied": (
        CANCEL,
        failed_bet("COMPLETED", bet_at_operator=True, cancel_at_operator=True),
        ["MATCHED"],
    ),
    "cancel confirmed, operator has no record": (
        CANCEL,
        failed_bet("COMPLETED", bet_at_operator=False, cancel_at_operator=False),
        ["MISSING_IN_OPERATOR"],
    ),
    "cancel pending, operator has nothing yet": (
        CANCEL,
        failed_bet("PENDING", bet_at_operator=False, cancel_at_operator=False),
        ["IN_FLIGHT"],
    ),
    "cancel refused, operator has nothing": (
        CANCEL,
        failed_bet("FAILED", bet_at_operator=False, cancel_at_operator=False),
        ["NO_EFFECT"],
    ),
    "cancel refused, operator applied it": (
        CANCEL,
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


async def test_a_row_admitted_before_refids_were_per_client_is_matched_by_the_id_it_was_sent_under(
    database_url: str,
) -> None:
    # The migration kept such a row's refId as its operator id: the operator knows it by that id only.
    conn = await asyncpg.connect(database_url)
    try:
        await hub_tx(conn, "old-bet", sent_as="old-bet")
        await op_record(conn, "old-bet")
        await feed_covered(conn, COVERED)
        by_key = await conn.fetch(BY_KEYS, COVERED, ["old-bet"])
    finally:
        await conn.close()
    assert [(r["key"], list(r["verdict"])) for r in by_key] == [("old-bet", ["MATCHED"])]
