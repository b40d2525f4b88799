"""`hubctl tx|keys|stats` against a real database and the mock operator."""

from __future__ import annotations

import argparse
import asyncio

import orjson
import pytest

from hub_common.operator import OperatorClient, OperatorSettings, OperatorTransactionRequest
from hub_common.schemas import TxType
from hubctl.commands import keys, stats, tx
from hubctl.context import HubctlSettings
from support.ledger_it import OPERATOR_SECRET, Harness, command, insert_admitted
from support.roles import RoleDbSettings


async def hubctl(capsys: pytest.CaptureFixture[str], settings: HubctlSettings, *argv: str) -> tuple[int, str]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in (tx, keys, stats):
        module.register(sub)
    args = parser.parse_args(["--json", *argv])
    capsys.readouterr()
    # The commands run their own event loop (asyncio.run), so they go to a thread.
    code: int = await asyncio.to_thread(args.handler, args, settings)
    return code, capsys.readouterr().out


async def test_resolve_completes_a_stuck_transaction_the_operator_applied(
    harness: Harness, role_db_settings: RoleDbSettings, operator_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = HubctlSettings(
        database=role_db_settings("hubctl"),
        operator_url=operator_url,
        operator_secret=OPERATOR_SECRET,
    )
    cmd = command("bet-stuck", TxType.BET, "p-1", 100)
    await insert_admitted(harness.pool, cmd)
    client = OperatorClient(OperatorSettings(url=operator_url, secret=OPERATOR_SECRET))
    try:  # the operator applied it, but the ledger never learned the outcome
        await client.post_transaction(
            OperatorTransactionRequest(
                transaction_id="bet-stuck", player_id="p-1", type=TxType.BET, amount_cents=100, currency="EUR"
            ),
            correlation_id="c",
        )
    finally:
        await client.close()

    code, out = await hubctl(capsys, settings, "tx", "stuck", "--minutes", "0")
    assert code == 0
    assert [r["ref_id"] for r in orjson.loads(out)] == ["bet-stuck"]

    code, out = await hubctl(capsys, settings, "tx", "resolve", "bet-stuck")
    assert code == 0
    assert orjson.loads(out)["status"] == "COMPLETED"
    row = await harness.row("bet-stuck")
    assert (row["status"], row["balance_cents"]) == ("COMPLETED", 9_900)
    assert await harness.pool.fetchval("SELECT count(*) FROM event_outbox WHERE key = 'bet-stuck'") == 1

    code, out = await hubctl(capsys, settings, "tx", "show", "bet-stuck")
    shown = orjson.loads(out)
    assert shown["transaction"]["status"] == "COMPLETED"
    assert [a["action"] for a in shown["audit"]] == ["manual-resolve"]
    assert shown["keys"][0]["status"] == "COMPLETED"

    await harness.pool.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    code, out = await hubctl(capsys, settings, "keys", "cleanup")
    assert orjson.loads(out) == {"deleted": 1}

    code, out = await hubctl(capsys, settings, "stats", "--hours", "1")
    report = orjson.loads(out)
    assert report["transactions_by_status"] == [{"status": "COMPLETED", "count": 1, "avg_amount": 100.0}]
