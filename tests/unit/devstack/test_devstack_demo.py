"""The demo traffic of `make up` and how its outcome is shown."""

from __future__ import annotations

import orjson

from hub_devstack.demo import PLAYERS, DemoResult, DemoRow, _webhook_ref_ids, demo_requests, render_table


def test_demo_covers_bets_wins_a_matching_refund_and_one_bet_over_the_balance() -> None:
    requests = demo_requests("abc123")
    kinds = [r["type"] for r in requests]
    assert kinds.count("BET") >= 3
    assert kinds.count("WIN") >= 2
    (refund,) = [r for r in requests if r["type"] == "REFUND"]
    (bet,) = [r for r in requests if r["refId"] == refund["originalRefId"]]
    assert bet["type"] == "BET"
    assert bet["amountCents"] == refund["amountCents"]
    assert bet["playerId"] == refund["playerId"]
    funded = dict(PLAYERS)
    assert any(r["type"] == "BET" and r["amountCents"] > funded[r["playerId"]] for r in requests)
    assert len({r["refId"] for r in requests}) == len(requests)
    assert all(r["refId"].endswith("abc123") for r in requests)
    assert {r["playerId"] for r in requests} <= set(funded)


def test_webhooks_are_matched_by_the_transaction_ref_id_whatever_the_body_encoding() -> None:
    report = {
        "received": [
            {"eventId": "e1", "body": {"data": {"refId": "bet-1"}}},
            {"eventId": "e2", "body": orjson.dumps({"data": {"refId": "win-1"}}).decode()},
            {"eventId": "e3", "body": "not json"},
            {"eventId": "e4"},
        ]
    }
    assert _webhook_ref_ids(report) == {"bet-1", "win-1"}


def test_table_shows_every_row_the_replay_and_the_operator_balances() -> None:
    rows = [
        DemoRow("bet-r1-x", "BET", "demo-alice", 250, 201, False, "COMPLETED", 9750, True),
        DemoRow("bet-r4-x", "BET", "demo-carol", 50000, 422, False, "REJECTED", None, True),
        DemoRow("bet-r1-x", "BET (retry)", "demo-alice", 250, 201, True, "COMPLETED", 9750, True),
    ]
    text = render_table(DemoResult(rows=rows, balances={"demo-alice": 10350}))
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["refId", "type", "player"]
    assert "201 (Idempotent-Replayed)" in lines[4]
    assert "REJECTED" in lines[3]
    assert lines[3].rstrip().endswith("yes")
    assert "operator balances: demo-alice=10350" in text
