"""Background jobs: the stale-transaction sweeper, compensating refunds, key expiry.

Each runs `once()` every interval (`hub_common.jobs.every`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from functools import partial

from hub_common.jobs import TRANSIENT
from hub_common.operator import (
    Budget,
    BudgetTimeout,
    OperatorClient,
    OperatorRateLimited,
    OperatorRejected,
    OperatorTechnicalError,
    OperatorTransactionRequest,
    Priority,
)
from hub_common.schemas import TxType
from hub_ledger import metrics
from hub_ledger.ordering import PlayerQueues, Work
from hub_ledger.store import Compensation, Store

log = logging.getLogger(__name__)


class Sweeper:
    """Resumes PENDING/PROCESSING transactions nobody has touched for `age_s` (a lost command, a crash).

    The work goes through the player's queue of this process, so it never runs beside another command of
    the same player here; the store only offers a player's oldest open transaction, so order is kept.
    """

    def __init__(
        self, store: Store, queues: PlayerQueues, process: Callable[[uuid.UUID], Awaitable[None]], *, age_s: float
    ) -> None:
        self._store = store
        self._queues = queues
        self._process = process
        self._age_s = age_s
        self._queued: set[uuid.UUID] = set()

    async def once(self) -> None:
        for tx in await self._store.stale_open(self._age_s):
            if tx.id in self._queued:
                continue
            self._queued.add(tx.id)
            metrics.SWEPT.inc()
            log.info("resuming a stale transaction", extra={"refId": tx.ref_id, "status": tx.status.value})
            done = partial(self._queued.discard, tx.id)
            self._queues.submit(tx.player_id, Work(self._runner(tx.id), done, credit=tx.type is not TxType.BET))

    def _runner(self, tx_id: uuid.UUID) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await self._process(tx_id)
            except TRANSIENT as exc:
                # Left open: the next sweep offers it again.
                log.warning("sweeper could not finish a transaction", extra={"error": repr(exc)})
                self._queued.discard(tx_id)

        return run


class Compensator:
    """Sends the compensating REFUND of each cancelled BET until the operator confirms it (or its deadline)."""

    def __init__(self, store: Store, client: OperatorClient, budget: Budget, *, deadline_s: float) -> None:
        self._store = store
        self._client = client
        self._budget = budget
        self._deadline_s = deadline_s
        self.wake = asyncio.Event()

    async def once(self) -> None:
        for comp in await self._store.pending_compensations():
            await self._attempt(comp)

    async def _attempt(self, comp: Compensation) -> None:
        request = OperatorTransactionRequest.model_validate(comp.request)
        correlation_id = comp.correlation_id or str(comp.transaction_id)
        try:
            await self._budget.acquire(Priority.CREDIT, timeout_s=30)
            # An earlier attempt may have landed: look before resending.
            record = None
            if comp.attempts > 0:
                record = await self._client.get_transaction(request.transaction_id, correlation_id=correlation_id)
                if record is None:
                    await self._budget.acquire(Priority.CREDIT, timeout_s=30)
            if record is None:
                await self._store.settle_compensation(comp.transaction_id, "PENDING", None)
                record = await self._client.post_transaction(request, correlation_id=correlation_id)
        except OperatorRejected as exc:
            metrics.COMPENSATIONS.labels("rejected").inc()
            await self._store.settle_compensation(comp.transaction_id, "FAILED", f"{exc.code}: {exc.message}")
            return
        except (OperatorTechnicalError, BudgetTimeout) as exc:
            if isinstance(exc, OperatorRateLimited):
                # Every process pauses, as the processor does: the operator counts all our calls together.
                await self._budget.defer(exc.retry_after_s)
            if comp.age_s > self._deadline_s:
                metrics.COMPENSATIONS.labels("expired").inc()
                metrics.CREDIT_FAILED.labels("CANCEL").inc()
                await self._store.settle_compensation(comp.transaction_id, "FAILED", f"deadline passed: {exc.message}")
            return
        metrics.COMPENSATIONS.labels("completed").inc()
        await self._store.settle_compensation(comp.transaction_id, "COMPLETED", None)


async def clean_keys(store: Store) -> None:
    metrics.KEYS_DELETED.inc(await store.delete_expired_keys())
