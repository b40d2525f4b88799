"""A command's way through the ledger: operator applied once, final event published, rows updated."""

from __future__ import annotations

import orjson

from hub_common.schemas import ErrorCode, TxStatus, TxType
from support.ledger_it import Harness, command, op_id
from support.waits import eventually


async def test_bet_completes_with_the_operator_balance_moved_once(ledger: Harness) -> None:
    cmd = command("bet-flow-1", TxType.BET, "p-1", 250)
    event = await ledger.settle(cmd)

    assert event.transaction.status is TxStatus.COMPLETED
    assert event.transaction.balance_cents == 9_750
    assert event.client_id == "rgs-demo"
    assert ledger.events.of(cmd.ref_id) == [TxStatus.PROCESSING, TxStatus.COMPLETED]
    assert all(key == cmd.ref_id for key, e in ledger.events.events if e.transaction.ref_id == cmd.ref_id)

    assert (await ledger.operator.player("p-1")).balance_cents == 9_750
    assert (await ledger.operator.ledger()).apply_counts == {op_id(cmd.ref_id): 1}

    row = await ledger.row(cmd.ref_id)
    assert (row["status"], row["balance_cents"]) == ("COMPLETED", 9_750)
    assert row["operator_transaction_id"].startswith("op-")
    assert row["completed_at"] is not None
    key_status = await ledger.pool.fetchval("SELECT status FROM idempotency_keys WHERE transaction_id = $1", row["id"])
    assert key_status == "COMPLETED"
    audit = await ledger.pool.fetch(
        "SELECT action, actor, before, after FROM audit_log WHERE entity_id = $1 ORDER BY id", str(row["id"])
    )
    assert [(a["action"], a["actor"]) for a in audit] == [("processing", "ledger"), ("completed", "ledger")]
    assert orjson.loads(audit[-1]["before"])["status"] == "PROCESSING"
    assert orjson.loads(audit[-1]["after"])["balanceCents"] == 9_750


async def test_replayed_command_does_not_call_the_operator_again(ledger: Harness) -> None:
    cmd = command("bet-replay-1", TxType.BET, "p-2", 100)
    await ledger.settle(cmd)
    calls_before = (await ledger.operator.stats()).total_calls

    # At-least-once delivery: the same record again (twice), then a marker behind it for the same player.
    await ledger.admit(cmd, row=False)
    await ledger.admit(cmd, row=False)
    marker = command("bet-replay-marker", TxType.BET, "p-2", 1)
    await ledger.settle(marker)

    assert (await ledger.operator.ledger()).apply_counts == {op_id(cmd.ref_id): 1, op_id(marker.ref_id): 1}
    assert (await ledger.operator.stats()).total_calls == calls_before + 1  # the marker's only
    assert ledger.events.of(cmd.ref_id) == [TxStatus.PROCESSING, TxStatus.COMPLETED]
    assert (await ledger.operator.player("p-2")).balance_cents == 9_899


async def test_command_whose_row_is_missing_is_inserted_and_processed(ledger: Harness) -> None:
    cmd = command("win-no-row", TxType.WIN, "p-3", 500)
    event = await ledger.settle(cmd, row=False)

    assert event.transaction.status is TxStatus.COMPLETED
    assert event.transaction.transaction_id == cmd.transaction_id
    row = await ledger.row(cmd.ref_id)
    assert (row["status"], row["balance_cents"], row["request_hash"]) == ("COMPLETED", 10_500, cmd.request_hash)
    key_status = await ledger.pool.fetchval("SELECT status FROM idempotency_keys WHERE key = $1", cmd.idempotency_key)
    assert key_status == "COMPLETED"
    actions = await ledger.pool.fetch("SELECT action FROM audit_log WHERE entity_id = $1 ORDER BY id", str(row["id"]))
    assert [a["action"] for a in actions] == ["created", "processing", "completed"]


async def test_insufficient_funds_is_rejected_with_the_balance(ledger: Harness) -> None:
    cmd = command("bet-too-big", TxType.BET, "p-4", 1_000_000)
    event = await ledger.settle(cmd)

    assert event.transaction.status is TxStatus.REJECTED
    assert event.error_code is ErrorCode.INSUFFICIENT_FUNDS
    assert event.transaction.balance_cents == 10_000
    row = await ledger.row(cmd.ref_id)
    assert (row["status"], row["error_code"]) == ("REJECTED", "INSUFFICIENT_FUNDS")


async def test_unknown_player_is_rejected(ledger: Harness) -> None:
    event = await ledger.settle(command("bet-nobody", TxType.BET, "ghost", 10))
    assert (event.transaction.status, event.error_code) == (TxStatus.REJECTED, ErrorCode.PLAYER_NOT_FOUND)


async def test_outbox_rows_are_all_marked_published(ledger: Harness) -> None:
    await ledger.settle(command("bet-outbox", TxType.BET, "p-5", 10))

    async def all_published() -> bool:
        unpublished = await ledger.pool.fetchval("SELECT count(*) FROM event_outbox WHERE published_at IS NULL")
        return bool(unpublished == 0)

    await eventually(all_published)
    assert await ledger.pool.fetchval("SELECT count(*) FROM event_outbox") == 2
