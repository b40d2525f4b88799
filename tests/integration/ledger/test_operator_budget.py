"""The shared operator budget: never more than the rate in any window, across processes; credits first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import datetime

import asyncpg
import pytest

from hub_common.operator import Budget, OperatorSettings, Priority, read_outlook
from hub_common.schemas import TxStatus, TxType
from hub_ledger.app import create_app
from hub_ledger.settings import LedgerSettings
from support.apps import serve
from support.ledger_faults import GRANT_LOG
from support.ledger_it import Harness, command
from support.waits import eventually

RATE = 8
WINDOW_S = 1.0
MARGIN_S = 0.1
SETTINGS = OperatorSettings(rate_per_minute=RATE, window_s=WINDOW_S, safety_margin_s=MARGIN_S, budget_poll_s=0.05)


@pytest.fixture
async def pools(database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    """Two pools: two processes sharing one database."""
    first = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    second = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    await first.execute(GRANT_LOG)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def grant_times(pool: asyncpg.Pool) -> list[datetime]:
    return [r["granted_at"] for r in await pool.fetch("SELECT granted_at FROM it_grant_log ORDER BY granted_at")]


def max_in_any_window(times: list[datetime], window_s: float) -> int:
    """Largest number of grants in any half-open window (t - window, t] ending at a grant."""
    best = 0
    for i, end in enumerate(times):
        best = max(best, sum(1 for t in times[: i + 1] if (end - t).total_seconds() < window_s))
    return best


async def test_two_processes_never_exceed_the_rate_in_any_window(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    budgets = [Budget(pool, SETTINGS) for pool in pools]
    calls = 3 * RATE + 3
    try:
        await asyncio.gather(*(budgets[i % 2].acquire(Priority(i % 2)) for i in range(calls)))
    finally:
        for budget in budgets:
            await budget.close()
    times = await grant_times(pools[0])
    assert len(times) == calls
    # The bound holds for the window plus its safety margin (hence for the bare window too), and the
    # budget is used to the full while there is a backlog.
    assert max_in_any_window(times, WINDOW_S + MARGIN_S) == RATE


async def test_credits_go_before_bets_across_processes(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    budgets = [Budget(pool, SETTINGS) for pool in pools]
    order: list[str] = []

    async def take(budget: Budget, priority: Priority, name: str) -> None:
        await budget.acquire(priority)
        order.append(name)

    try:
        # Exhaust the window, then queue BETs in one process and, later, credits in the other.
        await asyncio.gather(*(budgets[0].acquire(Priority.DEBIT) for _ in range(RATE)))
        bets = [asyncio.create_task(take(budgets[0], Priority.DEBIT, f"bet-{i}")) for i in range(3)]
        # The BETs wait (their process's row says so) before the credits arrive.
        await eventually(
            lambda: pools[0].fetchval("SELECT EXISTS (SELECT 1 FROM operator_budget_waiters)"), what="BET waiters"
        )
        credits = [asyncio.create_task(take(budgets[1], Priority.CREDIT, f"credit-{i}")) for i in range(3)]
        await asyncio.gather(*bets, *credits)
    finally:
        for budget in budgets:
            await budget.close()
    assert order[:3] == ["credit-0", "credit-1", "credit-2"]


async def test_retry_after_pauses_every_process(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    budgets = [Budget(pool, SETTINGS) for pool in pools]
    try:
        await budgets[0].defer(0.5)
        paused_until = await pools[0].fetchval("SELECT paused_until FROM operator_budget")
        await budgets[1].acquire(Priority.CREDIT)
    finally:
        for budget in budgets:
            await budget.close()
    (granted,) = await grant_times(pools[0])
    assert granted >= paused_until


async def test_two_ledger_instances_share_one_budget(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    await harness.pool.execute(GRANT_LOG)
    settings = make_settings(rate_per_minute=RATE, window_s=WINDOW_S, safety_margin_s=MARGIN_S)
    commands = [command(f"bet-2x-{i}", TxType.BET, f"p-{1 + i % 10}", 10) for i in range(2 * RATE + 4)]
    async with serve(create_app(settings)), serve(create_app(settings)):
        for cmd in commands:
            await harness.admit(cmd)
        events = [await harness.events.wait_final(cmd.ref_id, timeout_s=60) for cmd in commands]

    assert {e.transaction.status for e in events} == {TxStatus.COMPLETED}
    times = await grant_times(harness.pool)
    assert len(times) == len(commands)  # one call each: no resend, no lookup
    assert max_in_any_window(times, WINDOW_S + MARGIN_S) <= RATE
    assert (await harness.operator.stats()).total_calls == len(commands)


async def _grant_query_blocked(pool: asyncpg.Pool) -> bool:
    return bool(
        await pool.fetchval(
            """SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database()
                   AND wait_event_type = 'Lock' AND query LIKE '%operator_budget_grant(%')"""
        )
    )


async def test_a_more_urgent_waiter_arriving_during_a_grant_query_is_served_first_and_none_is_lost(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    """Regression: the pump asked for a BET's grant; a credit arrived while that query ran (here: held on the
    budget's row lock). The grant goes to the credit, and the BET still gets the next one."""
    pool, observer = pools
    budget = Budget(pool, SETTINGS)
    order: list[str] = []

    async def take(priority: Priority, name: str) -> None:
        await budget.acquire(priority, timeout_s=30)
        order.append(name)

    holder = await observer.acquire()
    try:
        lock = holder.transaction()
        await lock.start()
        await holder.execute("SELECT 1 FROM operator_budget WHERE name = 'operator' FOR UPDATE")
        bet = asyncio.create_task(take(Priority.DEBIT, "bet"))
        await eventually(lambda: _grant_query_blocked(observer), timeout_s=10)
        credit = asyncio.create_task(take(Priority.CREDIT, "credit"))
        await asyncio.sleep(0)  # the credit is in the heap before the query returns
        await lock.rollback()
        await asyncio.wait_for(asyncio.gather(bet, credit), 20)
    finally:
        await observer.release(holder)
        await budget.close()
    assert order == ["credit", "bet"]
    assert len(await grant_times(pool)) == 2


async def test_waiting_calls_are_granted_together_within_the_rate(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    pool = pools[0]
    rate = 40
    settings = SETTINGS.model_copy(update={"rate_per_minute": rate})
    await pool.execute("UPDATE operator_budget SET paused_until = clock_timestamp() + interval '0.3 seconds'")
    budget = Budget(pool, settings)
    try:
        # All queue up during the pause; then each query grants several at once, until the window is full.
        await asyncio.gather(*(budget.acquire(Priority.DEBIT) for _ in range(2 * rate)))
    finally:
        await budget.close()
    times = await grant_times(pool)
    assert len(times) == 2 * rate
    # One transaction grants a batch (all at one time), at most a tenth of the rate: small bursts.
    assert max(times.count(t) for t in times) == rate // 10
    assert max_in_any_window(times, WINDOW_S + MARGIN_S) == rate


async def test_a_promoted_waiter_goes_with_the_credits(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    """Priority inheritance: the BET of a player with a WIN queued behind it is served before other BETs."""
    budget = Budget(pools[0], SETTINGS)
    order: list[str] = []

    async def take(name: str, key: str) -> None:
        await budget.acquire(Priority.DEBIT, timeout_s=30, key=key)
        order.append(name)

    try:
        await asyncio.gather(*(budget.acquire(Priority.DEBIT) for _ in range(RATE)))  # the window is full
        others = [asyncio.create_task(take(f"bet-{i}", f"p-{i}")) for i in range(3)]
        mine = asyncio.create_task(take("bet-mine", "p-mine"))
        await eventually(lambda: len(budget._heap) == 4, what="four waiters")
        assert budget.promote("p-mine", Priority.CREDIT) == 1
        assert budget.promote("p-nobody", Priority.CREDIT) == 0
        await asyncio.wait_for(asyncio.gather(*others, mine), 20)
    finally:
        await budget.close()
    assert order[0] == "bet-mine"


async def test_grants_name_their_caller_and_the_outlook_reads_the_schedule(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    settings = SETTINGS.model_copy(update={"window_s": 60.0})
    ledger, reads = Budget(pools[0], settings, caller="ledger"), Budget(pools[1], settings, caller="balance:rgs-a")
    try:
        await asyncio.gather(*(ledger.acquire(Priority.DEBIT) for _ in range(5)))
        await asyncio.gather(*(reads.acquire(Priority.DEBIT) for _ in range(2)))
        await ledger.defer(30)
    finally:
        await ledger.close()
        await reads.close()
    outlook = await read_outlook(pools[0], settings)
    assert outlook.spent == {"ledger": 5, "balance:rgs-a": 2}
    assert 29 < outlook.pause_s <= 30
    # One slot left now (after the pause), the seven used free again a window after their grants.
    assert outlook.slot_s(1) == outlook.pause_s
    assert 59 < outlook.slot_s(2) <= settings.window_s + settings.safety_margin_s + 1.1
    assert 59 < outlook.next_expiry_s["balance:rgs-a"] <= 62


async def test_a_budget_without_its_row_is_created_by_the_first_grant(pools: tuple[asyncpg.Pool, asyncpg.Pool]) -> None:
    settings = SETTINGS.model_copy(update={"budget_name": "created-on-first-use"})
    budgets = [Budget(pool, settings) for pool in pools]
    try:
        # Both processes find no row: one creates it, neither fails, and the rate holds from the first grant.
        await asyncio.gather(*(budgets[i % 2].acquire(Priority.DEBIT, timeout_s=10) for i in range(RATE + 2)))
    finally:
        for budget in budgets:
            await budget.close()
    pool = pools[0]
    assert await pool.fetchval("SELECT count(*) FROM operator_budget WHERE name = 'created-on-first-use'") == 1
    times = await grant_times(pool)  # every grant, also those the window has dropped since
    assert len(times) == RATE + 2
    assert max_in_any_window(times, WINDOW_S + MARGIN_S) == RATE


async def test_a_process_whose_waiters_were_all_served_leaves_no_waiter_row(
    pools: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    budget = Budget(pools[0], SETTINGS)
    try:
        await asyncio.gather(*(budget.acquire(Priority.CREDIT, timeout_s=10) for _ in range(RATE + 1)))
        # The last grant's call dropped the row it had kept while some waited: nothing outranks other processes.
        assert await pools[1].fetchval("SELECT count(*) FROM operator_budget_waiters") == 0
    finally:
        await budget.close()


async def test_a_bet_waiting_for_budget_past_its_lease_keeps_it_and_is_sent_once(
    harness: Harness, make_settings: Callable[..., LedgerSettings]
) -> None:
    """The lease's heartbeat: a BET waiting for budget (here a Retry-After pause) longer than a third of its lease
    renews it, so neither a sweeper nor an SRE may take it over meanwhile; it is sent once when the pause ends."""
    settings = make_settings()
    ttl = settings.lease_ttl_s
    await harness.pool.execute(
        "UPDATE operator_budget SET paused_until = clock_timestamp() + make_interval(secs => $1)", ttl
    )
    cmd = command("bet-heartbeat-1", TxType.BET, "p-3", 100)
    async with serve(create_app(settings)):
        await harness.admit(cmd)

        async def processing() -> bool:
            return bool((await harness.row(cmd.ref_id))["status"] == "PROCESSING")

        await eventually(processing, what="the BET taken and waiting for budget")
        await asyncio.sleep(ttl * 0.75)
        left = await harness.pool.fetchval(
            "SELECT extract(epoch FROM lease_expires_at - now())::float8 FROM transactions WHERE ref_id = $1",
            cmd.ref_id,
        )
        assert left > ttl * 0.5  # renewed: the lease taken at the start had a quarter of its TTL left by now
        event = await harness.events.wait_final(cmd.ref_id, timeout_s=30)
    assert event.transaction.status is TxStatus.COMPLETED
    assert (await harness.operator.stats()).total_calls == 1
