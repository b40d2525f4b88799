"""After a database restore (docs/operations.md, "Database recovery"): transactions `hubctl recovery apply` marked
possibly sent are resolved with the operator before any decision that assumes they were never sent.

The restored row says "never sent" (PENDING, no attempt, or no row at all: re-created from the command on the
rewound hub.commands), yet the operator may have applied the transaction after the backup. Each test sets up
what recovery leaves behind (`hub_common.restore.mark_possibly_sent`, the function `recovery apply` runs) and
what the operator holds, then lets the real ledger re-process the command, past the BET's useful life.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from hub_common.operator import OperatorClient, OperatorSettings, OperatorTransactionRequest
from hub_common.restore import Result, mark_possibly_sent
from hub_common.schemas import ErrorCode, TransactionCommand, TxStatus, TxType
from mock_operator.admin_client import OperatorAdminClient
from support.ledger_it import OPERATOR_SECRET, Harness, command, insert_admitted, op_id

GET = "GET /v2/transactions"
POST = "POST /v2/transactions"
PAST_ITS_LIFE = timedelta(seconds=-1)


async def _marked(harness: Harness, cmd: TransactionCommand) -> None:
    """What `hubctl recovery apply` does for a transaction the journal shows admitted without an outcome."""
    async with harness.pool.acquire() as conn, conn.transaction():
        done = await mark_possibly_sent(
            conn,
            cmd.transaction_id,
            cmd.ref_id,
            cmd,
            correlation_id=f"corr-{cmd.ref_id}",
            key_ttl=timedelta(hours=24),
            actor="drill.sre",
            reason="database restored from a backup",
        )
    assert done.result is Result.MARKED, done.detail


async def _applied_by_the_operator(url: str, cmd: TransactionCommand, transaction_id: str) -> None:
    """The ledger that ran before the restore sent it and the operator applied it; the restored database lost
    every trace of that."""
    client = OperatorClient(OperatorSettings(url=url, secret=OPERATOR_SECRET), caller="ledger")
    try:
        await client.post_transaction(
            OperatorTransactionRequest(
                transaction_id=transaction_id,
                player_id=cmd.player_id,
                type=cmd.type,
                amount_cents=cmd.amount_cents,
                currency=cmd.currency,
                round_id=cmd.round_id,
            ),
            correlation_id="before-the-restore",
        )
    finally:
        await client.close()


async def _calls(operator: OperatorAdminClient) -> dict[str, int]:
    return (await operator.stats()).by_endpoint


async def _actions(harness: Harness, ref_id: str) -> list[str]:
    rows = await harness.pool.fetch(
        """SELECT a.action FROM audit_log a JOIN transactions t ON a.entity_id = t.id::text
           WHERE t.ref_id = $1 ORDER BY a.id""",
        ref_id,
    )
    return [r["action"] for r in rows]


async def test_a_bet_the_operator_applied_after_the_backup_completes_from_its_record_not_expired(
    ledger: Harness, operator_url: str
) -> None:
    cmd = command("bet-applied", TxType.BET, "p-1", 250, send_by=datetime.now(UTC) + PAST_ITS_LIFE)
    await _applied_by_the_operator(operator_url, cmd, op_id(cmd.ref_id))
    before = await _calls(ledger.operator)
    await _marked(ledger, cmd)  # the backup lacks the row: re-created from the command, marked

    event = await ledger.settle(cmd, row=False)

    assert event.transaction.status is TxStatus.COMPLETED, event
    assert event.transaction.balance_cents == 9_750
    assert ledger.events.of(cmd.ref_id) == [TxStatus.COMPLETED]  # asked, never sent again
    assert (await ledger.operator.ledger()).apply_counts[op_id(cmd.ref_id)] == 1
    assert (await ledger.operator.player("p-1")).balance_cents == 9_750
    calls = await _calls(ledger.operator)
    assert (calls.get(GET, 0) - before.get(GET, 0), calls.get(POST, 0) - before.get(POST, 0)) == (1, 0)
    row = await ledger.row(cmd.ref_id)
    # Seen by the operator: the reconciler matches it with the operator's record.
    assert (row["status"], row["attempts"], row["operator_id"]) == ("COMPLETED", 1, op_id(cmd.ref_id))
    assert await _actions(ledger, cmd.ref_id) == ["created", "recovery.possibly-sent", "completed"]


async def test_a_bet_never_sent_past_its_useful_life_expires_after_one_lookup_and_debits_nothing(
    ledger: Harness,
) -> None:
    marked = command("bet-lost", TxType.BET, "p-2", 250, send_by=datetime.now(UTC) + PAST_ITS_LIFE)
    ordinary = command("bet-late", TxType.BET, "p-3", 250, send_by=datetime.now(UTC) + PAST_ITS_LIFE)
    before = await _calls(ledger.operator)
    await _marked(ledger, marked)

    lost = await ledger.settle(marked, row=False)
    late = await ledger.settle(ordinary)  # no restore: the fast path, no operator call

    for event in (lost, late):
        assert (event.transaction.status, event.error_code) == (TxStatus.REJECTED, ErrorCode.BET_EXPIRED)
    assert ledger.events.of(marked.ref_id) == [TxStatus.REJECTED]
    calls = await _calls(ledger.operator)
    assert (calls.get(GET, 0) - before.get(GET, 0), calls.get(POST, 0) - before.get(POST, 0)) == (1, 0)
    assert (await ledger.operator.ledger()).apply_counts == {}
    assert (await ledger.operator.player("p-2")).balance_cents == 10_000
    row = await ledger.row(marked.ref_id)
    # Never reached the operator: attempts 0, what the reconciler reads as "no operator record expected".
    assert (row["error_code"], row["attempts"], row["possibly_sent_at"]) == ("BET_EXPIRED", 0, None)
    assert await _actions(ledger, marked.ref_id) == [
        "created",
        "recovery.possibly-sent",
        "recovery.not-at-operator",
        "rejected",
    ]


async def test_a_refund_of_a_bet_the_hub_never_saw_keeps_its_no_effect_rule_once_the_operator_has_no_record(
    ledger: Harness,
) -> None:
    refund = command("refund-orphan", TxType.REFUND, "p-4", 100, original_ref_id="bet-unseen")
    await _marked(ledger, refund)

    event = await ledger.settle(refund, row=False)

    assert event.transaction.status is TxStatus.COMPLETED
    row = await ledger.row(refund.ref_id)
    # No balance effect and no attempt, as without the restore: the reconciler expects no operator record.
    assert (row["reason"], row["attempts"]) == ("refund of an unknown bet: no balance effect", 0)
    assert await ledger.pool.fetchval(
        "SELECT count(*) FROM refund_tombstones WHERE client_id = $1 AND ref_id = 'bet-unseen'", refund.client_id
    )
    assert (await ledger.operator.player("p-4")).balance_cents == 10_000


async def test_a_bet_admitted_before_operator_ids_were_per_client_is_resolved_under_its_bare_ref_id(
    ledger: Harness, operator_url: str
) -> None:
    # A command of a release before migration 008 names no operator id; that ledger sent it under its refId.
    cmd = command("bet-legacy", TxType.BET, "p-5", 300, send_by=datetime.now(UTC) + PAST_ITS_LIFE)
    cmd = cmd.model_copy(update={"operator_id": None})
    await _applied_by_the_operator(operator_url, cmd, cmd.ref_id)
    await _marked(ledger, cmd)
    assert (await ledger.row(cmd.ref_id))["operator_id"] == cmd.ref_id

    event = await ledger.settle(cmd, row=False)

    assert event.transaction.status is TxStatus.COMPLETED
    assert (await ledger.operator.ledger()).apply_counts == {cmd.ref_id: 1}
    assert (await ledger.operator.player("p-5")).balance_cents == 9_700


async def test_a_bet_restored_as_processing_past_its_deadline_is_looked_up_before_being_given_up(
    ledger: Harness, operator_url: str
) -> None:
    # In flight in the backup (PROCESSING, one POST counted) and admitted long ago: its deadline (120 s) passed
    # while the Hub was down. The mark gives it a deadline from now, so it is asked rather than cancelled.
    cmd = command("bet-old", TxType.BET, "p-6", 400, send_by=datetime.now(UTC) - timedelta(hours=1))
    await insert_admitted(ledger.pool, cmd)
    await ledger.pool.execute(
        """UPDATE transactions SET status = 'PROCESSING', attempts = 1, created_at = now() - interval '1 hour',
               lease_owner = 'ledger@before-the-restore', lease_token = 1,
               lease_expires_at = now() + interval '1 minute'
           WHERE ref_id = $1""",
        cmd.ref_id,
    )
    await _applied_by_the_operator(operator_url, cmd, op_id(cmd.ref_id))
    await _marked(ledger, cmd)  # also ends the lease the backup recorded, fencing its holder
    row = await ledger.row(cmd.ref_id)
    assert (row["lease_token"], row["lease_expires_at"]) == (2, None)

    event = await ledger.settle(cmd, row=False)

    assert event.transaction.status is TxStatus.COMPLETED
    assert await ledger.pool.fetchval("SELECT count(*) FROM ledger_compensations") == 0
    assert (await ledger.operator.ledger()).apply_counts == {op_id(cmd.ref_id): 1}
    audit = await ledger.pool.fetchval(
        """SELECT a.before FROM audit_log a JOIN transactions t ON a.entity_id = t.id::text
           WHERE t.ref_id = $1 AND a.action = 'recovery.possibly-sent'""",
        cmd.ref_id,
    )
    assert orjson.loads(audit)["status"] == "PROCESSING"
