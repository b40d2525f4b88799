"""Picks up rows an operator reset to PENDING (runbook "Webhook Replay", "Queue Recovery") and rows a crashed
attempt left in PROCESSING, and runs them through the same pipeline."""

from __future__ import annotations

import asyncio
import logging

from hub_common.errors import InfrastructureError
from hub_dispatcher import metrics
from hub_dispatcher.dispatcher import Dispatcher
from hub_dispatcher.store import OutboxStore

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self, store: OutboxStore, dispatcher: Dispatcher, *, interval_s: float, batch: int, stale_after_s: float
    ) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._interval_s = interval_s
        self._batch = batch
        self._stale_after_s = stale_after_s

    async def run(self) -> None:
        while True:
            taken = await self.sweep_once()
            if taken < self._batch:
                await asyncio.sleep(self._interval_s)

    async def sweep_once(self) -> int:
        try:
            rows = await self._store.claim_due(limit=self._batch, stale_after_s=self._stale_after_s)
        except InfrastructureError as exc:
            metrics.SWEEPS.labels("error").inc()
            log.warning("webhook sweep failed", extra={"error": str(exc)})
            return 0
        if rows:
            log.info("webhook sweep claimed rows", extra={"count": len(rows)})
        results = await asyncio.gather(*(self._dispatcher.on_claimed(row) for row in rows), return_exceptions=True)
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, InfrastructureError):
                # The row stays PROCESSING and is taken over once stale.
                log.warning("swept webhook failed", extra={"eventId": row.id, "error": str(result)})
            elif isinstance(result, BaseException):
                raise result
        metrics.SWEEPS.labels("ok").inc()
        return len(rows)
