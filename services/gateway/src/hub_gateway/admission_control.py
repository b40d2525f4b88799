"""Admission control by time: when would a new transaction reach the operator, and may it be admitted?

At the operator's 60 calls a minute, overload is the Hub's normal regime. The gateway forecasts the wait of a new
transaction from the work ahead of it and the budget's real schedule, both read from PostgreSQL (shared by every
replica) in the background, never per request:

- work ahead: open (PENDING/PROCESSING) WINs and REFUNDs for a credit (they go first, `Priority.CREDIT`); open
  credits and BETs for a BET; plus what this replica admitted since the last read;
- schedule: `hub_common.operator.outlook` (the Retry-After pause, the grants in the window and when each leaves
  it). Credits outrank every other caller; BETs share their slots with the balance reads (same priority), so
  those are discounted by what balance reads spent in the last window. The reconciler's feed pages wait while any
  money movement waits and take nothing from them.

    wait(credit) = slot_s(credits + min(bets, slots free now) + 1)
    wait(BET)    = slot_s(credits + ceil((bets + 1) / bet_share)),  bet_share = 1 - balance grants / rate

(BETs already on their way take the slots free right now before a new credit gets there; only waiting BETs are
outranked by it.)

A BET whose predicted wait exceeds its useful life is refused (429, `Retry-After` = when the wait is predicted to
be back under it): the BETs in the queue are ones a player is still waiting for. WIN and REFUND are never refused.
Each RGS client holds at most its share of the BET capacity the useful life allows (never less than a floor), so
one client cannot fill the queue for all; each client's balance reads spend at most their share of the budget.
The forecast is an estimate: credits admitted later still overtake a queued BET, which is why the ledger never
sends a BET after its useful life (`send_by`, REJECTED `BET_EXPIRED`).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter as Tally
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from prometheus_client import Gauge

from hub_common.errors import HubError
from hub_common.operator import BALANCE_CALLER_PREFIX, BudgetOutlook, balance_caller
from hub_common.schemas import TxType
from hub_gateway.errors import RateLimitedError

log = logging.getLogger(__name__)

PREDICTED_WAIT = Gauge(
    "gateway_predicted_wait_seconds",
    "Predicted wait of a new transaction for the operator, by class (credit: WIN/REFUND; bet)",
    ["class"],
)
BET_CAPACITY = Gauge("gateway_bet_capacity", "BETs the useful life allows in the queue, given the credits ahead")
BACKLOG = Gauge("gateway_backlog_transactions", "Transactions admitted but not yet final (PENDING/PROCESSING)")
_CREDIT_WAIT = PREDICTED_WAIT.labels("credit")
_BET_WAIT = PREDICTED_WAIT.labels("bet")

# A BET's slots are shared with balance reads; never assume they take more than this fraction of them.
_MIN_BET_SHARE = 0.1


@dataclass(frozen=True)
class OpenWork:
    """Transactions admitted and not final, by client: (credits, BETs)."""

    credits: int = 0
    bets: int = 0
    bets_by_client: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.credits + self.bets


@dataclass(frozen=True)
class AdmissionPolicy:
    # A BET not sent to the operator within this many seconds of its admission is useless to its player.
    bet_useful_life_s: float
    # Each client's share of the BET capacity, and the BETs a client may always hold whatever its share.
    client_bet_share: float
    client_bet_floor: int
    # Each client's balance reads may take this share of the operator budget per window (at least one call).
    balance_share: float


@dataclass(frozen=True)
class Forecast:
    """What the gateway expects for a new transaction: `wait_s` until it reaches the operator."""

    wait_s: float


@dataclass
class _Local:
    """This replica's admissions since the last read (the database does not show them yet)."""

    credits: int = 0
    bets: Tally[str] = field(default_factory=Tally)
    balance: Tally[str] = field(default_factory=Tally)

    def minus(self, earlier: _Local) -> _Local:
        return _Local(self.credits - earlier.credits, self.bets - earlier.bets, self.balance - earlier.balance)

    def copy(self) -> _Local:
        return _Local(self.credits, Tally(self.bets), Tally(self.balance))


class AdmissionControl:
    """Holds the last read of the shared state; `refresh_forever` keeps it current."""

    def __init__(
        self,
        policy: AdmissionPolicy,
        *,
        read_outlook: Callable[[], Awaitable[BudgetOutlook]],
        read_work: Callable[[], Awaitable[OpenWork]],
        idle: BudgetOutlook,
    ) -> None:
        self._policy = policy
        self._read_outlook = read_outlook
        self._read_work = read_work
        self._outlook = idle
        self._work = OpenWork()
        self._local = _Local()
        # Admissions decided but not committed yet: counted at once, so concurrent requests see each other.
        self._pending = _Local()

    # --- reading the shared state ----------------------------------------------------------------------------

    async def refresh(self) -> None:
        # Admissions counted before the read began are committed, so the read shows them: only later ones stay.
        # One committed while the read was on its way is counted twice until the next read (a refusal too many,
        # never an admission too many); reading the work first keeps that window to one round trip.
        counted = self._local.copy()
        work = await self._read_work()
        outlook = await self._read_outlook()
        self._outlook, self._work = outlook, work
        self._local = self._local.minus(counted)
        _CREDIT_WAIT.set(self._credit_wait())
        _BET_WAIT.set(self._bet_wait())
        BET_CAPACITY.set(self.bet_capacity())
        BACKLOG.set(work.total)

    async def refresh_forever(self, interval_s: float) -> None:
        while True:
            try:
                await self.refresh()
            except HubError as exc:
                # Keep the last state: with the database down, admission fails with 503 anyway.
                log.warning("admission forecast could not be refreshed", extra={"error": exc.message})
            await asyncio.sleep(interval_s)

    # --- the forecast ------------------------------------------------------------------------------------------

    @property
    def _credits_ahead(self) -> int:
        return self._work.credits + self._local.credits + self._pending.credits

    @property
    def _bets_ahead(self) -> int:
        return self._work.bets + self._local.bets.total() + self._pending.bets.total()

    def _bet_share(self) -> float:
        balance = sum(n for caller, n in self._outlook.spent.items() if caller.startswith(BALANCE_CALLER_PREFIX))
        return max(_MIN_BET_SHARE, 1 - balance / self._outlook.rate)

    def _credit_wait(self) -> float:
        # Credits outrank waiting BETs, but BETs already on their way take the slots that are free right now
        # before a new credit reaches the budget.
        bets_first = min(self._bets_ahead, self._outlook.grants_within(0.0))
        return self._outlook.slot_s(self._credits_ahead + bets_first + 1)

    def _bet_wait(self, bets_ahead: int | None = None) -> float:
        ahead = self._bets_ahead if bets_ahead is None else bets_ahead
        return self._outlook.slot_s(self._credits_ahead + math.ceil((ahead + 1) / self._bet_share()))

    def bet_capacity(self) -> int:
        """BETs that can be in the queue with the last one still sent within its useful life."""
        slots = self._outlook.grants_within(self._policy.bet_useful_life_s) - self._credits_ahead
        return max(0, math.floor(slots * self._bet_share()))

    def forecast(self, tx_type: TxType) -> Forecast:
        return Forecast(self._bet_wait() if tx_type is TxType.BET else self._credit_wait())

    def client_bet_quota(self) -> int:
        share = math.ceil(self._policy.client_bet_share * self.bet_capacity())
        return max(self._policy.client_bet_floor, share)

    # --- decisions -----------------------------------------------------------------------------------------

    def refusal(self, client_id: str, tx_type: TxType) -> RateLimitedError | None:
        """Why a new transaction would be refused now (None: admit it). Only BETs are ever refused."""
        if tx_type is not TxType.BET:
            return None
        life = self._policy.bet_useful_life_s
        wait = self._bet_wait()
        if wait > life:
            message = f"a BET sent now would wait about {wait:.0f} s for the operator, past its {life:g} s useful life"
            return RateLimitedError(message, _seconds(wait - life), reason="bet_wait")
        held = self._work.bets_by_client.get(client_id, 0) + self._local.bets[client_id] + self._pending.bets[client_id]
        quota = self.client_bet_quota()
        if held >= quota:
            message = f"this client already has {held} BETs waiting for the operator, its share of the capacity"
            return RateLimitedError(message, self._quota_retry_after(held, quota), reason="client_quota")
        return None

    def _quota_retry_after(self, held: int, quota: int) -> int:
        # The queue drains at the BETs' rate; this client's BETs, spread through it, leave in proportion. Each of
        # them is sent or expired within its useful life, whatever the estimate says.
        per_s = self._outlook.rate / self._outlook.window_s * self._bet_share() * held / max(self._bets_ahead, held)
        return min(_seconds((held - quota + 1) / per_s), _seconds(self._policy.bet_useful_life_s))

    def reserve(self, client_id: str, tx_type: TxType) -> None:
        """An admission is being committed: count it now (`release` once it is known whether it was)."""
        _count(self._pending, client_id, tx_type, 1)

    def release(self, client_id: str, tx_type: TxType, *, admitted: bool) -> None:
        _count(self._pending, client_id, tx_type, -1)
        if admitted:
            _count(self._local, client_id, tx_type, 1)

    def balance_refusal(self, client_id: str, timeout_s: float) -> RateLimitedError | None:
        """Why a balance read would be refused now: the client's share is spent, or no grant comes in time."""
        caller = balance_caller(client_id)
        quota = max(1, math.floor(self._policy.balance_share * self._outlook.rate))
        spent = self._outlook.spent.get(caller, 0) + self._local.balance[client_id]
        if spent >= quota:
            retry_after = _seconds(self._outlook.next_expiry_s.get(caller, self._outlook.window_s))
            message = f"this client's balance reads have used their share ({quota} per window) of the operator budget"
            return RateLimitedError(message, retry_after, reason="balance_share")
        wait = self._credit_wait()
        if wait > timeout_s:
            return RateLimitedError("the operator budget is spent; retry later", _seconds(wait), reason="balance_wait")
        return None

    def balance_read(self, client_id: str) -> None:
        self._local.balance[client_id] += 1


def _count(tally: _Local, client_id: str, tx_type: TxType, n: int) -> None:
    if tx_type is TxType.BET:
        tally.bets[client_id] += n
    else:
        tally.credits += n


def _seconds(value: float) -> int:
    """A Retry-After: whole seconds, at least one."""
    return max(1, math.ceil(value))
