"""`hubctl tx replay`: only what the operator confirms it never saw, and never a cancelled BET."""

from __future__ import annotations

import orjson
import pytest

from hub_common.operator import OperatorClient, OperatorSettings, OperatorTransactionRequest
from hub_common.schemas import TxType
from hub_common.settings import KafkaSettings
from hubctl.context import HubctlSettings
from support.hubctl import hubctl_json
from support.ledger_it import OPERATOR_SECRET, Harness, command, insert_admitted, op_id
from support.roles import RoleDbSettings
from support.waits import eventually


@pytest.fixture
def settings(role_db_settings: RoleDbSettings, operator_url: str, kafka_settings: KafkaSettings) -> HubctlSettings:
    return HubctlSettings(
        database=role_db_settings("hubctl"),
        kafka=kafka_settings,
        operator_url=operator_url,
        operator_secret=OPERATOR_SECRET,
        hubctl_actor="hubctl:sre-test",
    )


async def replay(settings: HubctlSettings, *argv: str) -> dict[str, str]:
    result: dict[str, str] = await hubctl_json(settings, "tx", "replay", *argv)
    return result


async def fail(harness: Harness, ref_id: str) -> None:
    """The ledger's give-up path, as after a credit deadline: FAILED, the key COMPLETED."""
    await harness.pool.execute(
        """UPDATE transactions SET status = 'FAILED', error_code = 'OPERATOR_UNAVAILABLE', completed_at = now(),
               reason = 'not confirmed by the operator by its deadline' WHERE ref_id = $1""",
        ref_id,
    )
    await harness.pool.execute(
        """UPDATE idempotency_keys SET status = 'COMPLETED'
           WHERE transaction_id = (SELECT id FROM transactions WHERE ref_id = $1)""",
        ref_id,
    )


async def test_failed_win_the_operator_never_saw_is_replayed_and_completes(
    ledger: Harness, settings: HubctlSettings
) -> None:
    cmd = command("win-lost", TxType.WIN, "p-3", 700)
    await insert_admitted(ledger.pool, cmd)
    await fail(ledger, "win-lost")

    dry = await replay(settings, "win-lost", "--dry-run")
    assert dry["result"].startswith("dry run: the operator never saw it")
    assert (await ledger.row("win-lost"))["status"] == "FAILED"

    done = await replay(settings, "win-lost", "--reason", "INC-42 operator outage")
    assert done == {"refId": "win-lost", "clientId": "rgs-demo", "result": "replayed", "previousStatus": "FAILED"}

    async def completed() -> bool:
        return str((await ledger.row("win-lost"))["status"]) == "COMPLETED"

    await eventually(completed)
    assert (await ledger.operator.player("p-3")).balance_cents == 10_700
    row = await ledger.row("win-lost")
    assert row["replayed_at"] is not None
    audit = await ledger.pool.fetchrow(
        "SELECT actor, before, after, reason FROM audit_log WHERE action = 'manual-replay' AND entity_id = $1",
        str(row["id"]),
    )
    assert audit is not None
    assert (audit["actor"], audit["reason"]) == ("hubctl:sre-test", "INC-42 operator outage")
    assert orjson.loads(audit["before"])["status"] == "FAILED"


async def test_replay_is_refused_when_the_operator_has_the_transaction(
    harness: Harness, settings: HubctlSettings, operator_url: str
) -> None:
    cmd = command("win-applied", TxType.WIN, "p-4", 300)
    await insert_admitted(harness.pool, cmd)
    await fail(harness, "win-applied")
    client = OperatorClient(OperatorSettings(url=operator_url, secret=OPERATOR_SECRET), caller="hubctl")
    try:  # the operator applied it; only the Hub's record says otherwise
        await client.post_transaction(
            OperatorTransactionRequest(
                transaction_id=op_id("win-applied"), player_id="p-4", type=TxType.WIN, amount_cents=300, currency="EUR"
            ),
            correlation_id="c",
        )
    finally:
        await client.close()

    result = await replay(settings, "win-applied")

    assert "operator has applied this transaction" in result["result"]
    assert (await harness.row("win-applied"))["status"] == "FAILED"
    assert (await harness.operator.player("p-4")).balance_cents == 10_300


async def test_failed_bet_is_never_replayed(harness: Harness, settings: HubctlSettings) -> None:
    await insert_admitted(harness.pool, command("bet-cancelled", TxType.BET, "p-5", 100))
    await fail(harness, "bet-cancelled")

    result = await replay(settings, "bet-cancelled")

    assert "never replayed" in result["result"]
    assert (await harness.row("bet-cancelled"))["status"] == "FAILED"
    assert (await harness.operator.player("p-5")).balance_cents == 10_000


async def test_replay_of_an_open_transaction_is_audited(harness: Harness, settings: HubctlSettings) -> None:
    await insert_admitted(harness.pool, command("win-open", TxType.WIN, "p-6", 400))

    done = await replay(settings, "win-open", "--reason", "INC-43 command lost")

    assert done == {"refId": "win-open", "clientId": "rgs-demo", "result": "replayed", "previousStatus": "PENDING"}
    row = await harness.row("win-open")
    audit = await harness.pool.fetchrow(
        "SELECT actor, os_user, after, reason FROM audit_log WHERE action = 'manual-replay' AND entity_id = $1",
        str(row["id"]),
    )
    assert audit is not None
    assert (audit["actor"], audit["reason"]) == ("hubctl:sre-test", "INC-43 command lost")
    assert audit["os_user"]
    assert orjson.loads(audit["after"]) == {"status": "PENDING", "commandRequeued": True}
