"""Drives one transaction to a final status: rules, operator call(s), final transition.

The operator is always called with the transaction's operator id (`hub_common.operator.operator_id`), so any
resend is the same call. An outcome that may have been applied (timeout, 5xx, dropped connection) is resolved
with a GET before anything is resent; `attempts > 0` on a PROCESSING row means an earlier run may have sent it,
so that run's outcome is resolved first too. `attempts = 0` on a final row means the operator was never called
(the reconciler relies on it: such a row has no operator record).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta

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
    cancel_request,
    operator_request,
)
from hub_common.schemas import ErrorCode, TransactionCommand, TxStatus, TxType
from hub_common.transactions import TxRow
from hub_common.transitions import Finish
from hub_ledger import metrics
from hub_ledger.rules import Decision
from hub_ledger.settings import LedgerSettings
from hub_ledger.store import Store

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


def completed(record: OperatorTransaction) -> Finish:
    return Finish(
        TxStatus.COMPLETED,
        "applied by the operator",
        balance_cents=record.balance_cents,
        operator_transaction_id=record.operator_transaction_id,
    )


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
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._store = store
        self._client = client
        self._budget = budget
        self._settings = settings
        self._on_commit = on_commit
        self._sleep = sleep

    async def handle(self, cmd: TransactionCommand, correlation_id: str) -> None:
        started = await self._store.begin_command(cmd, correlation_id)
        if started is None:
            metrics.COMMANDS.labels("foreign_ref_id").inc()
            log.warning("refId belongs to another transaction; command ignored", extra={"refId": cmd.ref_id})
            return
        await self._advance(started.row, started.decision)

    async def process(self, tx_id: uuid.UUID) -> None:
        begun = await self._store.begin(tx_id)
        await self._advance(begun.row, begun.decision)

    async def _advance(self, tx: TxRow, decision: Decision | None) -> None:
        if decision is None:
            metrics.COMMANDS.labels("already_final").inc()
            return
        self._on_commit()
        if isinstance(decision, Finish):
            metrics.finished(tx)
            return
        outcome = await self._settle(tx, attempt_noted=decision.attempt_noted)
        if outcome is None:
            return
        done = await self._store.finish(tx.id, outcome)
        if done is not None:
            self._on_commit()
            metrics.finished(done)

    def _deadline(self, tx: TxRow) -> datetime:
        seconds = self._settings.bet_deadline_s if tx.type is TxType.BET else self._settings.credit_deadline_s
        return tx.created_at + timedelta(seconds=seconds)

    async def _settle(self, tx: TxRow, *, attempt_noted: bool) -> Finish | None:
        """The final outcome from the operator; None when the deadline path already finished the row.

        `attempt_noted`: the row's `attempts` already counts the first POST (made PROCESSING just now).
        """
        request = operator_request(tx)
        correlation_id = tx.correlation_id or str(tx.id)
        priority = Priority.for_type(tx.type)
        deadline = self._deadline(tx)
        backoff = Backoff(self._settings.retry_initial_s, self._settings.retry_max_s)
        must_resolve = tx.attempts > (1 if attempt_noted else 0)
        last_error = "no answer from the operator"
        while True:
            remaining = (deadline - datetime.now(UTC)).total_seconds()
            if remaining <= 0:
                await self._give_up(tx, last_error)
                return None
            if (wait := self._client.retry_in()) > 0:
                await self._sleep(min(wait, remaining))
                continue
            try:
                await self._acquire(tx.id, priority, remaining)
                if must_resolve:
                    record = await self._client.get_transaction(request.transaction_id, correlation_id=correlation_id)
                    if record is not None:
                        return completed(record)
                    must_resolve = False  # never applied: safe to send
                    continue
                if attempt_noted:
                    attempt_noted = False
                else:
                    await self._store.note_attempt(tx.id)
                return completed(await self._client.post_transaction(request, correlation_id=correlation_id))
            except OperatorRejected as exc:
                return Finish(TxStatus.REJECTED, exc.message, error_code=exc.code, balance_cents=exc.balance_cents)
            except BudgetTimeout:
                continue
            except OperatorRateLimited as exc:
                last_error = exc.message
                metrics.OPERATOR_RETRIES.labels("rate_limited").inc()
                await self._budget.defer(exc.retry_after_s)
            except CircuitOpenError:
                continue
            except OperatorTechnicalError as exc:
                last_error = exc.message
                must_resolve = must_resolve or exc.outcome_unknown
                metrics.OPERATOR_RETRIES.labels("technical").inc()
                log.info("operator call failed; will retry", extra={"refId": tx.ref_id, "error": exc.message})
                await self._sleep(min(backoff.next(), max(remaining, 0.0)))
                await self._store.touch(tx.id)

    async def _acquire(self, tx_id: uuid.UUID, priority: Priority, timeout_s: float) -> None:
        """Wait for operator budget while keeping the row's `updated_at` fresh.

        A transaction waiting in line for budget is being worked on: without the heartbeat, a backlog longer
        than `sweep_age_s` makes every replica's sweeper take the waiting rows over and send each one again,
        spending the scarce budget twice exactly when it is short.
        """
        heartbeat = asyncio.create_task(self._keep_fresh(tx_id), name=f"keep-fresh:{tx_id}")
        try:
            await self._budget.acquire(priority, timeout_s=timeout_s)
        finally:
            heartbeat.cancel()
            with suppress(asyncio.CancelledError):
                await heartbeat

    async def _keep_fresh(self, tx_id: uuid.UUID) -> None:
        # Real time, not the injectable `_sleep`: a fake sleep would spin this loop.
        interval = self._settings.sweep_age_s / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self._store.touch(tx_id)
            except TRANSIENT as exc:
                log.warning("could not refresh a waiting transaction", extra={"error": repr(exc)})

    async def _give_up(self, tx: TxRow, last_error: str) -> None:
        if tx.type is TxType.BET:
            outcome = Finish(
                TxStatus.FAILED,
                f"unresolved by its deadline ({last_error}); cancelled with a refund",
                error_code=ErrorCode.OPERATOR_UNAVAILABLE,
            )
            request = cancel_request(tx).model_dump(mode="json", by_alias=True)
            done = await self._store.fail_and_compensate(tx.id, outcome, request)
            if done is not None:
                metrics.BET_CANCELLED.inc()
        else:
            outcome = Finish(
                TxStatus.FAILED,
                f"not confirmed by the operator by its deadline ({last_error})",
                error_code=ErrorCode.OPERATOR_UNAVAILABLE,
            )
            done = await self._store.finish(tx.id, outcome)
            if done is not None:
                metrics.CREDIT_FAILED.labels(tx.type.value).inc()
                log.error("credit not confirmed by its deadline", extra={"refId": tx.ref_id})
        if done is not None:
            self._on_commit()
            metrics.finished(done)
