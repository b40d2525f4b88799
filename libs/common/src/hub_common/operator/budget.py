"""The operator budget: ONE sliding-window log in PostgreSQL shared by every ledger replica and the gateway.

Why not a token bucket: a bucket of capacity C refilling at C/60 per second that starts full lets 2C calls
through in 60 s (C at once, C more as it refills). The operator counts calls in any 60 s window, so the Hub
keeps the log of its own grants instead and grants only while that log is short enough.

Algorithm (`_try_grant`: one call of the database function `operator_budget_grant`, migration 011, in a
database transaction of its own: one round trip, granting a batch of k calls at once):
1. `SELECT ... FROM operator_budget WHERE name = $1 FOR UPDATE` serialises every grant of every process (the
   function creates the row first when it is missing). The lock is held until the call's transaction commits.
2. Only then `now = clock_timestamp()` (the database's clock: one clock for all replicas). Because grants are
   serialised by the lock and each reads the clock while holding it, grant times are non-decreasing.
3. Count the grants c with `granted_at > now - W` (W = window_s + safety_margin_s) and insert
   m = min(k, R - c) rows at `now` (R = rate_per_minute). When m = 0 the caller sleeps until the oldest of
   those leaves the window (`oldest + W - now`), which is the exact moment a grant becomes possible again, so
   the budget is used to the full while there is a backlog. The function is VOLATILE plpgsql: in READ COMMITTED
   each of its statements takes a fresh snapshot, so the count (taken after the lock) sees every grant committed
   by the previous holders of the lock, whose commits happened before they released it.

Proof that no window of length W holds more than R grants: take any window and its last grant g (time t_g,
granted in a batch of m rows all at t_g). Every grant in the window lies in (t_g - W, t_g]. When g's batch was
granted, c earlier grants lay in (t_g - W, t_g] (grants are serialised and time-ordered, so later batches
cannot appear there) and c + m <= R, hence at most R in the window. Rows at or before `now - W` can never be
counted again and are deleted while holding the lock.

Why W = window_s + safety_margin_s: a call granted at g reaches the operator at s in [g, g + d]. Two calls
the operator sees within 60 s were granted less than 60 s + d apart; with d <= safety_margin_s they fall in
one W-window, so the operator sees at most R calls in any 60 s. At the defaults (60 s + 1 s) that is still
98 % of the rate.

Priority (REFUND/WIN before BET): inside a process, waiters form a heap; the pump asks the database for as
many grants as there are waiters of the most urgent priority (at most `_max_batch`), and hands the grants out
in heap order once they arrive (a more urgent waiter that arrived meanwhile goes first). A grant nobody can
use any more (its waiter timed out during the query) is left unused: spending less is always safe. Across
processes, each waiting process keeps a row in `operator_budget_waiters` with its most urgent waiting priority
(refreshed at every attempt, dropped by the attempt that grants the last of them; stale rows are ignored); a
grant for a less urgent priority is refused while a more urgent waiter exists elsewhere.

`Retry-After` from the operator is obeyed by every process: `defer()` moves `operator_budget.paused_until`.

Each grant row names its `caller` (`ledger`, `balance:<clientId>`, `reconciler`, `hubctl`): the gateway's forecast
(`hub_common.operator.outlook`) reads what the ledger gets and what the others spend, and holds each client's
balance reads to their share.

Priority inheritance: a waiter may carry a `key` (the ledger uses the player id); `promote(key, priority)` makes
its waiters more urgent. A player's BET waiting for budget while a WIN of the same player queues behind it (one
player's transactions run in order) would otherwise make the WIN wait behind every other player's BETs.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum

import asyncpg
from prometheus_client import Counter, Gauge

from hub_common.operator.errors import BudgetTimeout
from hub_common.operator.settings import OperatorSettings
from hub_common.schemas import TxType

log = logging.getLogger(__name__)

BUDGET_GRANTS = Counter("hub_operator_budget_grants_total", "Operator calls granted by the shared budget", ["priority"])
BUDGET_WAITERS = Gauge("hub_operator_budget_waiters", "Tasks of this process waiting for operator budget")

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError)
# Grants asked for in one database transaction; bounds the rows one statement inserts. Also at most a tenth
# of the rate (see `Budget.__init__`).
_MAX_BATCH = 500

# The whole algorithm, steps 1-3, in one server-side call (migration 011): one round trip per batch.
# $1 name, $2 waiter id, $3 priority, $4 window W, $5 rate R, $6 staleness of waiter rows, $7 calls wanted,
# $8 caller, $9 whether the batch covers every waiter of this process (its waiter row is then dropped once all
# were granted).
_GRANT = "SELECT * FROM operator_budget_grant($1, $2, $3, $4, $5, $6, $7, $8, $9)"


# The `caller` of each grant row (see the module docstring).
LEDGER_CALLER = "ledger"
BALANCE_CALLER_PREFIX = "balance:"


def balance_caller(client_id: str) -> str:
    """The caller name of one RGS client's balance reads."""
    return BALANCE_CALLER_PREFIX + client_id


class Priority(IntEnum):
    """Lower is more urgent."""

    CREDIT = 0  # REFUND, WIN and compensating refunds: money owed to the player goes first.
    DEBIT = 1  # BET and balance reads.
    # Reads of the operator's report feed for reconciliation: they wait while any money movement waits.
    REPORT = 2

    @classmethod
    def for_type(cls, tx_type: TxType) -> Priority:
        return cls.DEBIT if tx_type is TxType.BET else cls.CREDIT


@dataclass(order=True)
class _Waiter:
    priority: int
    seq: int
    future: asyncio.Future[None] = field(compare=False)
    key: str | None = field(default=None, compare=False)


class Budget:
    """`await budget.acquire(priority)` before every operator call; call `close()` on shutdown."""

    def __init__(self, pool: asyncpg.Pool, settings: OperatorSettings, *, caller: str = "") -> None:
        self._pool = pool
        self._caller = caller
        self._name = settings.budget_name
        self._rate = settings.rate_per_minute
        self._window = timedelta(seconds=settings.window_s + settings.safety_margin_s)
        self._poll_s = settings.budget_poll_s
        self._stale = timedelta(seconds=max(5 * settings.budget_poll_s, 5.0))
        # The calls of one batch leave together, so the last of them reaches the operator later after its grant
        # the bigger the batch, and the safety margin must cover that delay (see "Why W" above). A burst of at
        # most a tenth of the rate keeps it small (6 calls at the default 60/min); a lifted rate batches freely.
        self._max_batch = max(1, min(_MAX_BATCH, settings.rate_per_minute // 10))
        self._waiter_id = uuid.uuid4()
        self._heap: list[_Waiter] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        # Whether `operator_budget_waiters` may hold this process's row (to delete once nobody here waits).
        self._registered = False

    async def acquire(self, priority: Priority, *, timeout_s: float | None = None, key: str | None = None) -> None:
        """Wait until one operator call may be made; raises `BudgetTimeout` after `timeout_s`.

        `key`: what `promote` finds the waiter by."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(int(priority), next(self._seq), future, key)
        if self._heap and waiter < self._heap[0]:
            self._wake.set()  # the pump is sleeping on behalf of a less urgent waiter
        heapq.heappush(self._heap, waiter)
        BUDGET_WAITERS.inc()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._run_pump(), name="operator-budget")
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout_s)
        except TimeoutError:
            raise BudgetTimeout(f"no operator budget within {timeout_s} s") from None
        finally:
            BUDGET_WAITERS.dec()
            if not future.done():
                future.cancel()  # the pump skips it

    def promote(self, key: str, priority: Priority) -> int:
        """Make the waiters carrying `key` at least as urgent as `priority`; returns how many were promoted."""
        promoted = 0
        for waiter in self._heap:
            if waiter.key == key and waiter.priority > priority and not waiter.future.done():
                waiter.priority = int(priority)
                promoted += 1
        if promoted:
            heapq.heapify(self._heap)
            self._wake.set()  # the pump may be sleeping on behalf of a less urgent waiter
        return promoted

    async def defer(self, seconds: float) -> None:
        """Pause every process's grants for `seconds` (the operator's Retry-After)."""
        await self._pool.execute(
            """UPDATE operator_budget
               SET paused_until = greatest(paused_until, clock_timestamp() + make_interval(secs => $2::float8))
               WHERE name = $1""",
            self._name,
            seconds,
        )

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump
        for waiter in self._heap:
            waiter.future.cancel()
        self._heap.clear()

    async def _run_pump(self) -> None:
        while True:
            while self._heap and self._heap[0].future.done():
                heapq.heappop(self._heap)
            if not self._heap:
                if self._registered:
                    await self._forget_waiter()
                if not self._heap:
                    return
                continue
            top = self._heap[0]
            pending = [w for w in self._heap if not w.future.done()]
            wanted = min(sum(1 for w in pending if w.priority == top.priority), self._max_batch)
            # Cleared before asking, so a more urgent waiter arriving during the query is not missed.
            self._wake.clear()
            try:
                granted, wait = await self._try_grant(top.priority, wanted, last=wanted == len(pending))
            except _DB_ERRORS as exc:
                log.warning("operator budget unavailable", extra={"error": repr(exc)})
                self._registered = True  # not known: forgotten explicitly once nobody waits
                granted, wait = 0, self._poll_s
            except Exception as exc:
                # A bug: fail every waiter (their callers retry or stop) rather than leave them hanging.
                log.exception("operator budget pump failed")
                for waiter in self._heap:
                    if not waiter.future.done():
                        waiter.future.set_exception(exc)
                self._heap.clear()
                return
            if granted:
                # The heap may have changed during the query (a more urgent waiter pushed on top, waiters timed
                # out): the grants go to whoever is most urgent now, and only those waiters leave the heap.
                self._hand_out(granted)
            if wait <= 0:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(wait, self._poll_s))

    def _hand_out(self, granted: int) -> None:
        for _ in range(granted):
            waiter = self._pop_pending()
            if waiter is None:
                return
            BUDGET_GRANTS.labels(Priority(waiter.priority).name).inc()
            waiter.future.set_result(None)

    def _pop_pending(self) -> _Waiter | None:
        while self._heap:
            waiter = heapq.heappop(self._heap)
            if not waiter.future.done():
                return waiter
        return None

    async def _try_grant(self, priority: int, wanted: int, *, last: bool) -> tuple[int, float]:
        """(calls granted now, seconds to wait before asking again; 0 = ask again at once).

        `last`: the batch covers every waiter of this process; when all of it is granted, the function drops this
        process's waiter row instead of refreshing it (nobody here waits any more)."""
        row = await self._pool.fetchrow(
            _GRANT,
            self._name,
            self._waiter_id,
            priority,
            self._window,
            self._rate,
            self._stale,
            wanted,
            self._caller,
            last,
        )
        assert row is not None  # the function always returns its one row
        now, paused_until, used, oldest, outranked, granted = row
        self._registered = not (last and granted == wanted)
        if granted:
            return granted, 0.0
        if paused_until is not None and paused_until > now:
            return 0, float((paused_until - now).total_seconds())
        if used >= self._rate:
            return 0, max(float((oldest + self._window - now).total_seconds()), 0.001)
        if outranked:
            return 0, self._poll_s
        return 0, 0.0  # cannot happen (wanted >= 1); ask again rather than stall

    async def _forget_waiter(self) -> None:
        try:
            await self._pool.execute(
                "DELETE FROM operator_budget_waiters WHERE name = $1 AND waiter_id = $2", self._name, self._waiter_id
            )
            self._registered = False
        except _DB_ERRORS as exc:
            log.warning("could not clear operator budget waiter row", extra={"error": repr(exc)})
