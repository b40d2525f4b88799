"""Waking waiting requests: only final events wake, only their own transaction's watchers."""

from __future__ import annotations

import asyncio

from hub_common.schemas import ErrorCode, Transaction, TransactionEvent, TxStatus, TxType
from hub_gateway.outcomes import OutcomeWaiter
from support.gateway_fakes import CREATED


def _event(transaction_id: str, status: TxStatus, code: ErrorCode | None = None) -> TransactionEvent:
    tx = Transaction(
        transaction_id=transaction_id,
        ref_id=f"ref-{transaction_id}",
        type=TxType.BET,
        player_id="p-1",
        amount_cents=100,
        currency="EUR",
        status=status,
        created_at=CREATED,
        updated_at=CREATED,
    )
    return TransactionEvent(client_id="rgs-a", error_code=code, transaction=tx)


async def test_final_event_wakes_its_watchers() -> None:
    waiter = OutcomeWaiter()
    with waiter.watch("t-1") as first, waiter.watch("t-1") as second, waiter.watch("t-2") as other:
        waiting = asyncio.gather(first.wait(5), second.wait(5))
        await asyncio.sleep(0)
        assert waiter.deliver(_event("t-1", TxStatus.REJECTED, ErrorCode.INSUFFICIENT_FUNDS)) == 2
        events = await waiting
        assert [e.error_code if e else None for e in events] == [ErrorCode.INSUFFICIENT_FUNDS] * 2
        assert await other.wait(0) is None
    assert waiter.watching == 0


async def test_intermediate_states_do_not_wake() -> None:
    waiter = OutcomeWaiter()
    with waiter.watch("t-1") as watch:
        assert waiter.deliver(_event("t-1", TxStatus.PROCESSING)) == 0
        assert await watch.wait(0.01) is None


async def test_event_before_the_wait_is_not_lost() -> None:
    waiter = OutcomeWaiter()
    with waiter.watch("t-1") as watch:
        waiter.deliver(_event("t-1", TxStatus.COMPLETED))
        event = await watch.wait(0)
        assert event is not None
        assert event.transaction.status is TxStatus.COMPLETED


async def test_events_without_watchers_are_ignored() -> None:
    assert OutcomeWaiter().deliver(_event("t-9", TxStatus.COMPLETED)) == 0
