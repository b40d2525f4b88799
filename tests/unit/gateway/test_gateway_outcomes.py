"""Waking waiting requests: only final events wake, only their own transaction's watchers."""

from __future__ import annotations

import asyncio

import pytest

from hub_common.schemas import ErrorCode, Transaction, TransactionEvent, TxStatus, TxType
from hub_gateway.backlog import BacklogGuard, RetryAfterPolicy
from hub_gateway.errors import RateLimitedError
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


POLICY = RetryAfterPolicy(operator_rate_per_minute=60, min_s=1, max_s=60)


def test_backlog_guard_refuses_over_the_bound() -> None:
    guard = BacklogGuard(max_backlog=10, retry_after=POLICY)
    guard.update(10)
    guard.check()
    guard.update(17)
    with pytest.raises(RateLimitedError) as refused:
        guard.check()
    # 7 over the bound at the operator's 1 call per second: 7 s until admission resumes.
    assert (refused.value.backlog, refused.value.retry_after_s) == (17, 7)


@pytest.mark.parametrize(
    ("rate_per_minute", "backlog", "expected"),
    [
        (60, 11, 1),  # just over: one call drains it
        (30, 20, 20),  # 10 over at 0.5/s
        (600, 110, 10),  # 100 over at 10/s
        (60, 10_000, 60),  # capped at the maximum
        (6000, 11, 1),  # never below the minimum
    ],
)
def test_retry_after_follows_the_operator_rate(rate_per_minute: int, backlog: int, expected: int) -> None:
    policy = RetryAfterPolicy(operator_rate_per_minute=rate_per_minute, min_s=1, max_s=60)
    assert policy.seconds(backlog, bound=10) == expected


def test_backlog_guard_disabled_at_zero() -> None:
    guard = BacklogGuard(max_backlog=0, retry_after=POLICY)
    guard.update(10**6)
    guard.check()
