"""`hubctl tx|keys|stats` against a real database and the mock operator."""

from __future__ import annotations

import orjson

from hub_common.operator import OperatorClient, OperatorSettings, OperatorTransactionRequest
from hub_common.schemas import TxType
from hubctl.context import HubctlSettings
from support.hubctl import hubctl as run_hubctl
from support.ledger_it import OPERATOR_SECRET, Harness, command, insert_admitted, op_id
from support.roles import RoleDbSettings


async def hubctl(settings: HubctlSettings, *argv: str) -> tuple[int, str]:
    ran = await run_hubctl(settings, "--json", *argv)
    return ran.code, ran.out


async def test_resolve_completes_a_stuck_transaction_the_operator_applied(
    harness: Harness, role_db_settings: RoleDbSettings, operator_url: str
) -> None:
    settings = HubctlSettings(
        database=role_db_settings("hubctl"),
        operator_url=operator_url,
        operator_secret=OPERATOR_SECRET,
        hubctl_actor="jane.doe",
    )
    cmd = command("bet-stuck", TxType.BET, "p-1", 100)
    await insert_admitted(harness.pool, cmd)
    client = OperatorClient(OperatorSettings(url=operator_url, secret=OPERATOR_SECRET), caller="hubctl")
    try:  # the operator applied it, but the ledger never learned the outcome
        await client.post_transaction(
            OperatorTransactionRequest(
                transaction_id=op_id("bet-stuck"), player_id="p-1", type=TxType.BET, amount_cents=100, currency="EUR"
            ),
            correlation_id="c",
        )
    finally:
        await client.close()

    code, out = await hubctl(settings, "tx", "stuck", "--minutes", "0")
    assert code == 0
    assert [r["ref_id"] for r in orjson.loads(out)] == ["bet-stuck"]

    code, out = await hubctl(settings, "tx", "resolve", "bet-stuck")
    assert code == 0
    assert orjson.loads(out)["status"] == "COMPLETED"
    assert orjson.loads(out)["clientId"] == "rgs-demo"
    row = await harness.row("bet-stuck")
    assert (row["status"], row["balance_cents"]) == ("COMPLETED", 9_900)
    assert await harness.pool.fetchval("SELECT count(*) FROM event_outbox WHERE key = 'bet-stuck'") == 1

    code, out = await hubctl(settings, "tx", "show", "bet-stuck")
    shown = orjson.loads(out)
    assert shown["transaction"]["status"] == "COMPLETED"
    assert [a["action"] for a in shown["audit"]] == ["manual-resolve"]
    assert shown["keys"][0]["status"] == "COMPLETED"

    await harness.pool.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    code, out = await hubctl(settings, "keys", "cleanup", "--yes")
    assert orjson.loads(out) == {"deleted": 1}
    audit = await harness.pool.fetch("SELECT entity, action, actor, os_user FROM audit_log WHERE actor = 'jane.doe'")
    assert [(a["entity"], a["action"]) for a in audit] == [
        ("transaction", "manual-resolve"),
        ("idempotency_key", "key.cleanup"),
    ]
    assert all(a["os_user"] for a in audit)

    code, out = await hubctl(settings, "stats", "--hours", "1")
    report = orjson.loads(out)
    assert report["transactions_by_status"] == [{"status": "COMPLETED", "count": 1, "avg_amount": 100.0}]
