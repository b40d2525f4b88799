"""The delivery path's row writes, each kind group-committed through its own `Coalescer` (see `batching`)."""

from __future__ import annotations

import asyncio

from hub_dispatcher.batching import Coalescer
from hub_dispatcher.store import Claim, Finished, NewRow, OutboxRow, OutboxStore


class Writes:
    def __init__(self, store: OutboxStore, *, max_batch: int) -> None:
        self.claim_new: Coalescer[NewRow, bool] = Coalescer("claim-new", store.claim_new, max_batch=max_batch)
        self.claim: Coalescer[Claim, OutboxRow | None] = Coalescer("claim", store.claim, max_batch=max_batch)
        self.delivered: Coalescer[Finished, None] = Coalescer("delivered", store.mark_delivered, max_batch=max_batch)
        self.failed: Coalescer[Finished, None] = Coalescer("failed", store.mark_failed, max_batch=max_batch)

    async def run(self) -> None:
        """Every flushing loop, for the app's lifetime (one connection each at most); cancel to stop."""
        async with asyncio.TaskGroup() as group:
            for coalescer in (self.claim_new, self.claim, self.delivered, self.failed):
                group.create_task(coalescer.run(), name=f"writes:{coalescer.name}")
