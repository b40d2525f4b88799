"""The delivery path's row writes, each kind group-committed (`hub_common.batching`).

Every caller of a failed statement gets its error (it knows what that means for its delivery), and a cancelled
caller's row is written anyway: its effect (a claim, a delivered mark) is still true, and leaving it out would
need the same repair as a crash. One statement of each kind at a time: one pool connection each at most.
"""

from __future__ import annotations

from typing import TypeVar

from hub_common.batching import GroupCommit, OnFailure, Run
from hub_dispatcher.store import Claim, Finished, NewRow, OutboxRow, OutboxStore

I = TypeVar("I")  # noqa: E741 - item
O = TypeVar("O")  # noqa: E741 - outcome


def _group(name: str, run: Run[I, O], max_batch: int) -> GroupCommit[I, O]:
    return GroupCommit(name, run, max_batch=max_batch, on_failure=OnFailure.SHARE, write_abandoned=True)


class Writes:
    def __init__(self, store: OutboxStore, *, max_batch: int) -> None:
        self.claim_new: GroupCommit[NewRow, bool] = _group("claim-new", store.claim_new, max_batch)
        self.claim: GroupCommit[Claim, OutboxRow | None] = _group("claim", store.claim, max_batch)
        self.delivered: GroupCommit[Finished, None] = _group("delivered", store.mark_delivered, max_batch)
        self.failed: GroupCommit[Finished, None] = _group("failed", store.mark_failed, max_batch)

    async def close(self) -> None:
        """On shutdown, once the deliveries stopped: queued and later writes fail with a retryable error."""
        await self.claim_new.close()
        await self.claim.close()
        await self.delivered.close()
        await self.failed.close()
