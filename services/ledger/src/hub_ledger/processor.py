"""Drives one transaction to a final status: rules, operator call(s), final transition.

The operator is always called with the transaction's stored operator id (`TxRow.operator_id`), so any resend is
the same call. An outcome that may have been applied (timeout, 5xx, dropped connection) is resolved
with a GET before anything is resent; `attempts > 0` on a PROCESSING row means an earlier run may have sent it,
so that run's outcome is resolved first too. `attempts = 0` on a final row means the operator was never called
(the reconciler relies on it: such a row has no operator record).

After a database restore the restored row may say "never sent" about a transaction the operator applied after the
backup; `hubctl recovery apply` marks such transactions (`possibly_sent_at`), and the processor asks the operator
about them first (`CallOperator.resolve_first`): its record finishes the transaction; without one, the mark is
cleared and the ordinary rules decide (`Store.not_at_operator`), so a BET's useful life, like every rule that
finishes a transaction without the operator, is applied only to what provably never reached it. In normal
operation nothing is marked: no extra call.

Ownership: the processor works on a transaction only under the lease its begin step took
(`hub_common.transitions`). A heartbeat renews the lease while the processor waits for budget, backs off and
retries; an operator call starts only with at least the operator timeout (plus a margin) left on the lease, as
measured on this process's monotonic clock from before the statement that last extended it (so never later than
the database's view); every re-POST is counted by a statement that checks the lease, and the final write names
the lease token. A processor that finds its lease taken over (an SRE's `hubctl tx resolve` after the lease
expired, another replica's sweeper) stops at once: no further call, no final write.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from opentelemetry import trace

from hub_common.jobs import TRANSIENT
from hub_common.operator import (
    Budget,
    BudgetTimeout,
    CircuitOpenError,
    OperatorClient,
    OperatorRateLimited,
    OperatorRejected,
    OperatorTechnicalError,
    OperatorTransaction,
    Priority,
    operator_request,
)
from hub_common.schemas import ErrorCode, TransactionCommand, TxStatus, TxType
from hub_common.telemetry import span
from hub_common.transactions import TxRow
from hub_common.transitions import Finish
from hub_ledger import metrics
from hub_ledger.rules import CallOperator, Decision, expire
from hub_ledger.settings import LEASE_MARGIN_S, LedgerSettings
from hub_ledger.store import Begun, Store

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

Sleep = Callable[[float], Awaitable[None]]


def completed(record: OperatorTransaction) -> Finish:
    return Finish(
        TxStatus.COMPLETED,
        "applied by the operator",
        balance_cents=record.balance_cents,
        operator_transaction_id=record.operator_transaction_id,
    )


def _expired(send_by: datetime | None) -> bool:
    """A BET's useful life ended (counted here: the caller finishes it REJECTED BET_EXPIRED)."""
    if send_by is None or datetime.now(UTC) < send_by:
        return False
    metrics.BET_EXPIRED.labels("budget").inc()
    return True


def _seconds_left(send_by: datetime | None) -> float:
    return math.inf if send_by is None else (send_by - datetime.now(UTC)).total_seconds()


class LeaseLost(Exception):
    """The transaction's lease was taken over (or it was finished) by someone else: stop working on it."""


class NotAtOperator:
    """`_settle`'s answer for a transaction marked possibly sent of which the operator has no record: it is
    decided again as never sent."""


NOT_AT_OPERATOR = NotAtOperator()


@dataclass
class _Held:
    """The lease this process holds on one transaction, and until when it surely holds it (monotonic clock)."""

    tx_id: uuid.UUID
    token: int
    valid_until: float
    lost: bool = False


class Backoff:
    def __init__(self, initial_s: float, max_s: float) -> None:
        self._next = initial_s
        self._max = max_s

    def next(self) -> float:
        current = self._next
        self._next = min(self._next * 2, self._max)
        return current


class Processor:
    def __init__(
        self,
        store: Store,
        client: OperatorClient,
        budget: Budget,
        settings: LedgerSettings,
        *,
        on_commit: Callable[[], None],
        credit_waiting: Callable[[str], bool] = lambda _: False,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._store = store
        self._client = client
        self._budget = budget
        self._settings = settings
        self._on_commit = on_commit
        # Whether a WIN/REFUND of the player waits behind the transaction being sent (it then goes as urgently).
        self._credit_waiting = credit_waiting
        self._sleep = sleep

    async def handle(self, cmd: TransactionCommand, correlation_id: str) -> None:
        waited = False
        while True:
            began_at = time.monotonic()
            with span(tracer, "ledger.begin"):
                started = await self._store.begin_command(cmd, correlation_id)
            if started is None:
                metrics.COMMANDS.labels("foreign_ref_id").inc()
                log.warning("refId belongs to another transaction; command ignored", extra={"refId": cmd.ref_id})
                return
            if started.decision is not None or started.row.status.is_final:
                break
            # Someone else holds it (a replica that had this partition before a rebalance, a crashed ledger
            # whose lease has not run out, an SRE's hubctl). Wait for it here, in the player's queue: a later
            # transaction of the player (a REFUND of this BET) must not reach the operator before this one.
            if not waited:
                waited = True
                metrics.COMMANDS.labels("held_elsewhere").inc()
                log.info(
                    "transaction held elsewhere; waiting for its holder or its lease to run out",
                    extra={"refId": cmd.ref_id, "holder": started.row.lease_owner},
                )
            await self._sleep(self._holder_wait(started.row))
        await self._advance(started.row, started.decision, began_at)

    async def process(self, tx_id: uuid.UUID) -> None:
        """The sweeper's path; a transaction someone holds is left to them (the sweeper offers it again)."""
        began_at = time.monotonic()
        begun = await self._store.begin(tx_id)
        await self._advance(begun.row, begun.decision, began_at)

    def _holder_wait(self, tx: TxRow) -> float:
        """How long to wait before looking again: until the lease runs out (by this host's clock, only a hint:
        the database decides), at most a second, so a holder that finishes early is noticed soon."""
        left = (tx.lease_expires_at - datetime.now(UTC)).total_seconds() if tx.lease_expires_at else 0.0
        return min(max(left, 0.05), 1.0)

    async def _advance(self, tx: TxRow, decision: Decision | None, began_at: float) -> None:
        if decision is None:
            # Final already, or (the sweeper's path) someone else holds it: theirs to finish.
            metrics.COMMANDS.labels("already_final" if tx.status.is_final else "held_elsewhere").inc()
            return
        self._on_commit()
        if isinstance(decision, Finish):
            if decision.error_code is ErrorCode.BET_EXPIRED:
                metrics.BET_EXPIRED.labels("queued").inc()
            metrics.finished(tx)
            return
        held = _Held(tx.id, tx.lease_token, began_at + self._settings.lease_ttl_s)
        done: TxRow | None = None
        again: Begun | None = None
        try:
            async with self._heartbeat(held):
                outcome = await self._settle(tx, decision, held)
                if outcome is None:
                    return
                if isinstance(outcome, NotAtOperator):
                    began_at = time.monotonic()
                    again = await self._store.not_at_operator(tx.id, held.token)
                    if again is None:
                        raise LeaseLost
                else:
                    with span(tracer, "ledger.finish"):
                        done = await self._store.finish(tx.id, outcome, held.token)
        except LeaseLost:
            metrics.LEASES_LOST.inc()
            log.warning(
                "lease lost: another owner took the transaction over; stopped working on it",
                extra={"refId": tx.ref_id, "transactionId": str(tx.id)},
            )
            return
        if again is not None:
            log.info(
                "possibly sent before a database restore, but the operator has no record: decided as never sent",
                extra={"refId": tx.ref_id, "transactionId": str(tx.id)},
            )
            await self._advance(again.row, again.decision, began_at)
            return
        if done is None:
            # Finished (or taken over) by someone else between our operator call and this write.
            metrics.LEASES_LOST.inc()
            return
        self._on_commit()
        metrics.finished(done)

    def _deadline(self, tx: TxRow) -> datetime:
        seconds = self._settings.bet_deadline_s if tx.type is TxType.BET else self._settings.credit_deadline_s
        # A replayed transaction (`hubctl tx replay`) gets a full deadline again, and so does one marked possibly
        # sent after a database restore (the ledger was stopped meanwhile; the operator has not been asked yet).
        return (tx.possibly_sent_at or tx.replayed_at or tx.created_at) + timedelta(seconds=seconds)

    async def _settle(self, tx: TxRow, decision: CallOperator, held: _Held) -> Finish | NotAtOperator | None:
        """The final outcome from the operator; None when the deadline path already finished the row;
        `NOT_AT_OPERATOR` when `decision.resolve_first` and the operator has no record.

        `decision.attempt_noted`: the row's `attempts` already counts the first POST (made PROCESSING just now).
        Raises `LeaseLost` once the lease is gone.
        """
        attempt_noted = decision.attempt_noted
        request = operator_request(tx, decision.original_transaction_id)
        correlation_id = tx.correlation_id or str(tx.id)
        deadline = self._deadline(tx)
        backoff = Backoff(self._settings.retry_initial_s, self._settings.retry_max_s)
        must_resolve = decision.resolve_first or tx.attempts > (1 if attempt_noted else 0)
        # A BET goes within its useful life or not at all, as long as no POST of it can have reached the operator
        # (once one may have, only the operator's answer or the deadline's cancel can finish it).
        send_by = tx.send_by if tx.type is TxType.BET and not must_resolve else None
        last_error = "no answer from the operator"
        while True:
            remaining = min((deadline - datetime.now(UTC)).total_seconds(), _seconds_left(send_by))
            if remaining <= 0:
                # An unsent BET past its useful life is simply not sent; anything else met its deadline.
                if _expired(send_by):
                    return expire()
                await self._give_up(tx, last_error, held)
                return None
            if (wait := self._client.retry_in()) > 0:
                await self._sleep(min(wait, remaining))
                continue
            try:
                await self._acquire(tx, remaining)
                if must_resolve:
                    await self._ensure(held)
                    record = await self._client.get_transaction(request.transaction_id, correlation_id=correlation_id)
                    if record is not None:
                        return completed(record)
                    if decision.resolve_first:
                        return NOT_AT_OPERATOR  # the rules decide it now, as one never sent
                    must_resolve = False  # never applied: safe to send
                    continue
                if _expired(send_by):
                    # Decided right before the call: the grant goes unused (spending less is always safe).
                    return expire()
                await self._before_post(held, counted=attempt_noted)
                attempt_noted = False
                return completed(await self._client.post_transaction(request, correlation_id=correlation_id))
            except OperatorRejected as exc:
                return Finish(TxStatus.REJECTED, exc.message, error_code=exc.code, balance_cents=exc.balance_cents)
            except (BudgetTimeout, CircuitOpenError):
                continue
            except OperatorRateLimited as exc:
                last_error = exc.message
                metrics.OPERATOR_RETRIES.labels("rate_limited").inc()
                await self._budget.defer(exc.retry_after_s)
            except OperatorTechnicalError as exc:
                last_error = exc.message
                must_resolve = must_resolve or exc.outcome_unknown
                send_by = None if exc.outcome_unknown else send_by
                metrics.OPERATOR_RETRIES.labels("technical").inc()
                log.info("operator call failed; will retry", extra={"refId": tx.ref_id, "error": exc.message})
                await self._sleep(min(backoff.next(), max(remaining, 0.0)))

    async def _acquire(self, tx: TxRow, timeout_s: float) -> None:
        """Wait for operator budget (the lease's heartbeat keeps the transaction held meanwhile).

        A BET with a WIN/REFUND of its player queued behind it asks as a credit; one arriving later promotes it
        (keyed by player, `PlayerQueues(on_credit_behind=...)`).
        """
        priority = Priority.for_type(tx.type)
        if priority is Priority.DEBIT and self._credit_waiting(tx.player_id):
            priority = Priority.CREDIT
        with span(tracer, "operator.budget"):
            await self._budget.acquire(priority, timeout_s=timeout_s, key=tx.player_id)

    async def _before_post(self, held: _Held, *, counted: bool) -> None:
        """The lease check before a POST. The first one was counted by the PROCESSING transition that took the
        lease (a local check suffices); a re-POST is counted by a statement that also checks and renews it."""
        if counted:
            await self._ensure(held)
        else:
            await self._renew(held, count_attempt=True)

    async def _ensure(self, held: _Held) -> None:
        """Just before an operator call: the lease must outlast the call, else renew it (or stop)."""
        if held.lost:
            raise LeaseLost
        needed = self._settings.operator.timeout_s + LEASE_MARGIN_S
        if time.monotonic() + needed > held.valid_until:
            await self._renew(held)

    async def _renew(self, held: _Held, *, count_attempt: bool = False) -> None:
        # Measured before the statement: the database's expiry (its now() + TTL) is never earlier than this.
        sent = time.monotonic()
        if held.lost or not await self._store.renew(held.tx_id, held.token, count_attempt=count_attempt):
            held.lost = True
            raise LeaseLost
        held.valid_until = sent + self._settings.lease_ttl_s

    @asynccontextmanager
    async def _heartbeat(self, held: _Held) -> AsyncIterator[None]:
        """Renew the lease every third of its TTL while the transaction is worked on.

        A transaction waiting for budget or backing off is being worked on: without the heartbeat its lease
        would expire, and a replica's sweeper (or an SRE) would take it over and send it again, spending the
        scarce budget twice exactly when it is short.
        """
        # Nearly every transaction is finished long before its first renewal is due: a timer costs it far less
        # than a task started, cancelled and awaited. Real time, not the injectable `_sleep`.
        interval = self._settings.lease_ttl_s / 3
        task: asyncio.Task[None] | None = None

        def start() -> None:
            nonlocal task
            task = asyncio.create_task(self._keep_renewed(held, interval), name=f"lease:{held.tx_id}")

        timer = asyncio.get_running_loop().call_later(interval, start)
        try:
            yield
        finally:
            timer.cancel()
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task

    async def _keep_renewed(self, held: _Held, interval: float) -> None:
        """Renew now (a first interval has passed), then every `interval`."""
        while not held.lost:
            try:
                await self._renew(held)
            except LeaseLost:
                return  # the work loop sees `held.lost` before its next call
            except TRANSIENT as exc:
                log.warning("could not renew a transaction's lease", extra={"error": repr(exc)})
            await asyncio.sleep(interval)

    async def _give_up(self, tx: TxRow, last_error: str, held: _Held) -> None:
        """The deadline passed: a BET is cancelled (FAILED + compensating refund), a credit FAILED (alert)."""
        if tx.type is TxType.BET:
            outcome = Finish(
                TxStatus.FAILED,
                f"unresolved by its deadline ({last_error}); cancelled with a refund",
                error_code=ErrorCode.OPERATOR_UNAVAILABLE,
                compensate=True,
            )
            done = await self._store.finish(tx.id, outcome, held.token)
            if done is not None:
                metrics.BET_CANCELLED.inc()
        else:
            outcome = Finish(
                TxStatus.FAILED,
                f"not confirmed by the operator by its deadline ({last_error})",
                error_code=ErrorCode.OPERATOR_UNAVAILABLE,
            )
            done = await self._store.finish(tx.id, outcome, held.token)
            if done is not None:
                metrics.CREDIT_FAILED.labels(tx.type.value).inc()
                log.error("credit not confirmed by its deadline", extra={"refId": tx.ref_id})
        if done is not None:
            self._on_commit()
            metrics.finished(done)
