"""`hubctl trace`: the story of a transaction whose webhook was retried, dead-lettered and replayed.

A real ledger settles it against the mock operator, the dispatcher runs as its own process (its JSON log is the
`--logs` source) against the real mock RGS, which refuses every delivery until the SRE replays the dead letter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub_common.schemas import TxType
from hub_common.settings import DatabaseSettings, KafkaSettings
from hubctl.context import HubctlSettings
from mock_rgs.models import Behaviour
from support.dispatcher_it import DispatcherProcess, dispatcher_settings, mock_rgs
from support.hubctl import hubctl, hubctl_json
from support.ledger_it import Harness, command
from support.waits import eventually


async def _webhook_status(ledger: Harness, ref_id: str) -> str | None:
    status: str | None = await ledger.pool.fetchval(
        """SELECT w.status FROM webhook_outbox w JOIN transactions t ON t.id = w.transaction_id
           WHERE t.ref_id = $1""",
        ref_id,
    )
    return status


def _events(found: dict[str, Any], source: str) -> list[str]:
    return [e["event"] for e in found["timeline"] if e["source"] == source]


async def test_trace_of_a_retried_dead_lettered_and_replayed_transaction(
    ledger: Harness, kafka_settings: KafkaSettings, db_settings: DatabaseSettings, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    ctl = HubctlSettings(kafka=kafka_settings, database=db_settings, hubctl_actor="jane.doe")
    cmd = command("bet-traced", TxType.BET, "p-7", 250)
    async with mock_rgs() as rgs:
        await rgs.admin.set_behaviour(Behaviour(status=500, count=1_000))
        settings = dispatcher_settings(kafka_settings, db_settings, rgs.url, retry_schedule_ms=[50, 100])
        process = DispatcherProcess(settings, logs / "webhook-dispatcher.log")
        await process.start()
        try:
            await ledger.settle(cmd)
            await eventually(lambda: _is(ledger, cmd.ref_id, "DEAD_LETTER"), timeout_s=60, what="webhook dead-lettered")

            async def on_the_topic() -> bool:
                return bool(await hubctl_json(ctl, "dlq", "list", "--player", "p-7"))

            await eventually(on_the_topic, what="dead letter on hub.webhooks.dlq")
            await rgs.admin.clear_behaviour()
            webhook_id = str(
                await ledger.pool.fetchval(
                    "SELECT id FROM webhook_outbox WHERE transaction_id = $1::uuid", cmd.transaction_id
                )
            )
            replayed = await hubctl_json(ctl, "dlq", "replay", "--id", webhook_id, "--yes", "--reason", "INC-7")
            assert [r["result"] for r in replayed] == ["replayed"]
            await eventually(lambda: _is(ledger, cmd.ref_id, "DELIVERED"), what="replayed delivery")
        finally:
            await process.stop()

    found = await hubctl_json(ctl, "trace", cmd.ref_id, "--logs", str(logs))

    assert found["subject"] == {
        "given": cmd.ref_id,
        "transactionId": cmd.transaction_id,
        "refId": cmd.ref_id,
        "correlationId": f"corr-{cmd.ref_id}",
        "playerId": "p-7",
        "webhookIds": [webhook_id],
    }
    assert found["transaction"]["status"] == "COMPLETED"
    times = [e["at"] for e in found["timeline"]]
    assert times == sorted(times)
    assert _events(found, "transaction") == ["admitted", "final: COMPLETED"]
    assert _events(found, "idempotency_key") == ["key stored"]
    assert "event queued: COMPLETED" in _events(found, "event_outbox")
    webhook = _events(found, "webhook")
    assert webhook[0] == "queued: transaction.completed" and webhook[-1] == "delivered"
    attempts = [e for e in webhook if e.startswith("attempt")]
    assert attempts == ["attempt 1: 500", "attempt 2: 500", "attempt 3: 500", "attempt 1: 200"]
    replay_attempt = next(e for e in found["timeline"] if e["event"] == "attempt 1: 200")
    assert replay_attempt["detail"]["replay"] is True
    audit = [e for e in found["timeline"] if e["source"] == "audit"]
    assert [a["event"] for a in audit][:2] == ["processing", "completed"]  # the ledger's own transitions
    replay_audit = [a for a in audit if a["event"] == "dlq.replay"]
    assert [(a["detail"]["actor"], a["detail"]["reason"]) for a in replay_audit] == [("jane.doe", "INC-7")]
    assert replay_audit[0]["detail"]["osUser"]
    prefix = kafka_settings.topic_prefix
    topics = [e["event"].split(":")[0] for e in found["timeline"] if e["source"] == "kafka"]
    for topic in ("hub.commands", "hub.transactions", "hub.webhooks.retry.1", "hub.webhooks.retry.2"):
        assert topic in topics, (topic, topics)
    assert "hub.webhooks.dlq" in topics
    assert not any(t.startswith(prefix) for t in topics)
    assert "hub.commands: command BET 250" in _events(found, "kafka")
    log_lines = [e for e in found["timeline"] if e["source"] == "log"]
    assert log_lines and {e["detail"]["file"] for e in log_lines} == {"webhook-dispatcher.log"}
    assert found["notes"] == []

    text = await hubctl(ctl, "trace", cmd.transaction_id, "--no-kafka")
    assert text.code == 0, text.err
    assert "attempt 3: 500" in text.out and "dlq.replay" in text.out and cmd.ref_id in text.out


async def _is(ledger: Harness, ref_id: str, status: str) -> bool:
    return await _webhook_status(ledger, ref_id) == status


async def test_trace_of_an_unknown_id_is_one_line(
    ledger: Harness, kafka_settings: KafkaSettings, db_settings: DatabaseSettings
) -> None:
    ctl = HubctlSettings(kafka=kafka_settings, database=db_settings)
    ran = await hubctl(ctl, "trace", "no-such-ref")
    assert ran.code == 1
    assert ran.err == "hubctl: nothing found for no-such-ref (database, topics)\n"
