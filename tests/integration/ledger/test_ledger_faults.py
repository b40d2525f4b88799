"""Unknown outcomes resolved by lookup; a BET past its deadline cancelled; stale rows swept."""

from __future__ import annotations

from collections.abc import Callable

from hub_common.operator import OperatorClient, OperatorSettings, OperatorTransactionRequest, cancel_id
from hub_common.schemas import ErrorCode, TransactionCommand, TxStatus, TxType
from hub_ledger.app import create_app
from hub_ledger.settings import LedgerSettings
from mock_operator.models import FaultConfig
from support.apps import serve
from support.ledger_it import OPERATOR_SECRET, Harness, command, insert_admitted, op_id
from support.waits import eventually


async def test_timeout_after_apply_is_resolved_by_lookup_not_resent(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    # Every POST is applied, then the connection hangs past the client's timeout and drops.
    await harness.operator.set_faults(FaultConfig(timeout_after_apply_rate=1.0, hang_ms=1_000))
    async with serve(create_app(make_settings(operator_timeout_s=0.3))):
        event = await harness.settle(command("bet-unknown", TxType.BET, "p-1", 100))

    assert event.transaction.status is TxStatus.COMPLETED
    assert event.transaction.balance_cents == 9_900
    assert (await harness.operator.ledger()).apply_counts == {op_id("bet-unknown"): 1}
    by_endpoint = (await harness.operator.stats()).by_endpoint
    assert by_endpoint["POST /v2/transactions"] == 1
    assert by_endpoint["GET /v2/transactions"] >= 1


async def test_bet_unresolved_by_its_deadline_fails_and_is_refunded(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    await harness.operator.set_faults(FaultConfig(error_rate=1.0, error_status=503))
    async with serve(create_app(make_settings(bet_deadline_s=1.0))):
        event = await harness.settle(command("bet-deadline", TxType.BET, "p-2", 100))
        assert (event.transaction.status, event.error_code) == (TxStatus.FAILED, ErrorCode.OPERATOR_UNAVAILABLE)

        await harness.operator.clear_faults()

        async def compensated() -> bool:
            status = await harness.pool.fetchval("SELECT status FROM ledger_compensations")
            return bool(status == "COMPLETED")

        await eventually(compensated)

    records = {r.transaction_id: r for r in (await harness.operator.ledger()).transactions}
    cancel = records[cancel_id(op_id("bet-deadline"))]
    assert (cancel.type, cancel.original_transaction_id) == (TxType.REFUND, op_id("bet-deadline"))
    assert (await harness.operator.player("p-2")).balance_cents == 10_000


async def test_a_429_to_the_compensation_pauses_the_shared_budget(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    await harness.operator.set_faults(FaultConfig(error_rate=1.0, error_status=503))
    async with serve(create_app(make_settings(bet_deadline_s=1.0))):
        event = await harness.settle(command("bet-429", TxType.BET, "p-6", 100))
        assert event.transaction.status is TxStatus.FAILED
        # The cancel's first call is refused with a Retry-After: every process must hold back, not just retry.
        await harness.operator.set_faults(FaultConfig(force429=1, retry_after_s=3))
        asked_at = await harness.pool.fetchval("SELECT clock_timestamp()")

        async def deferred() -> bool:
            paused = await harness.pool.fetchval("SELECT paused_until FROM operator_budget")
            return paused is not None and (paused - asked_at).total_seconds() >= 2.5

        await eventually(deferred, what="the budget paused for the Retry-After")

        async def compensated() -> bool:
            return bool(await harness.pool.fetchval("SELECT status FROM ledger_compensations") == "COMPLETED")

        await eventually(compensated, what="the cancel sent once the pause is over")
    assert (await harness.operator.stats()).faults.get("force429") == 1
    assert (await harness.operator.player("p-6")).balance_cents == 10_000


async def test_win_unresolved_by_its_deadline_fails(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    await harness.operator.set_faults(FaultConfig(error_rate=1.0, error_status=500))
    async with serve(create_app(make_settings(credit_deadline_s=1.0))):
        event = await harness.settle(command("win-deadline", TxType.WIN, "p-3", 100))
    assert (event.transaction.status, event.error_code) == (TxStatus.FAILED, ErrorCode.OPERATOR_UNAVAILABLE)
    assert await harness.pool.fetchval("SELECT count(*) FROM ledger_compensations") == 0


async def test_sweeper_finishes_a_transaction_whose_command_was_lost(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    cmd = command("bet-lost", TxType.BET, "p-4", 100)
    await insert_admitted(harness.pool, cmd)  # admitted, but its command never reaches Kafka
    async with serve(create_app(make_settings(sweep_age_s=0.5))):
        event = await harness.events.wait_final(cmd.ref_id)
    assert event.transaction.status is TxStatus.COMPLETED
    assert (await harness.operator.ledger()).apply_counts == {op_id("bet-lost"): 1}


async def test_expired_keys_are_deleted(harness: Harness, make_settings: Callable[..., LedgerSettings]) -> None:
    pool = harness.pool
    await pool.execute(
        """INSERT INTO idempotency_keys (id, key, scope, request_hash, status, expires_at) VALUES
           (gen_random_uuid(), 'old', 'rgs-demo', 'h', 'COMPLETED', now() - interval '1 minute'),
           (gen_random_uuid(), 'fresh', 'rgs-demo', 'h', 'COMPLETED', now() + interval '1 hour')"""
    )
    settings = make_settings(key_cleanup_interval_s=0.2)
    async with serve(create_app(settings)):

        async def cleaned() -> bool:
            return bool(await pool.fetchval("SELECT count(*) FROM idempotency_keys") == 1)

        await eventually(cleaned)
    assert await pool.fetchval("SELECT key FROM idempotency_keys") == "fresh"


async def test_crash_after_send_is_resolved_by_lookup_on_redelivery(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    """A ledger died after POSTing (row PROCESSING, attempts 1); the operator had applied it."""
    cmd = command("bet-crash", TxType.BET, "p-5", 100)
    await insert_admitted(harness.pool, cmd)
    await harness.pool.execute(
        "UPDATE transactions SET status = 'PROCESSING', attempts = 1 WHERE ref_id = $1", cmd.ref_id
    )
    client = OperatorClient(OperatorSettings(url=make_settings().operator.url, secret=OPERATOR_SECRET), caller="ledger")
    try:
        await client.post_transaction(operator_request_of(cmd), correlation_id="c")
    finally:
        await client.close()

    async with serve(create_app(make_settings())):
        event = await harness.settle(cmd, row=False)  # the redelivered command

    assert (event.transaction.status, event.transaction.balance_cents) == (TxStatus.COMPLETED, 9_900)
    assert (await harness.operator.ledger()).apply_counts == {op_id("bet-crash"): 1}
    by_endpoint = (await harness.operator.stats()).by_endpoint
    assert by_endpoint["POST /v2/transactions"] == 1  # ours above; the ledger only looked it up
    assert by_endpoint["GET /v2/transactions"] == 1


def operator_request_of(cmd: TransactionCommand) -> OperatorTransactionRequest:
    return OperatorTransactionRequest(
        transaction_id=op_id(cmd.ref_id),
        player_id=cmd.player_id,
        type=cmd.type,
        amount_cents=cmd.amount_cents,
        currency=cmd.currency,
        round_id=cmd.round_id,
    )
