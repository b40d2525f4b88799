"""Per-player ordering with concurrency across players, and the offsets that are safe to commit.

Commands of one player run one after another in arrival order (one queue and one task per busy player);
different players run concurrently. A partition's offset is committed only up to its lowest offset not yet
handled, so a crash re-delivers everything unfinished (and the ledger's idempotency makes that harmless).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from contextlib import suppress
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

P = TypeVar("P", bound=Hashable)


class OffsetTracker(Generic[P]):
    """Offsets handed out per partition; `committable` is the next offset to commit for each partition."""

    def __init__(self) -> None:
        self._pending: dict[P, set[int]] = {}
        self._next: dict[P, int] = {}
        self._committed: dict[P, int] = {}

    def started(self, partition: P, offset: int) -> None:
        self._pending.setdefault(partition, set()).add(offset)
        self.seen(partition, offset + 1)

    def seen(self, partition: P, next_offset: int) -> None:
        """Everything before `next_offset` was fetched (records handled elsewhere, e.g. dead-lettered)."""
        self._next[partition] = max(self._next.get(partition, 0), next_offset)

    def finished(self, partition: P, offset: int) -> None:
        self._pending.get(partition, set()).discard(offset)

    @property
    def in_flight(self) -> int:
        return sum(len(s) for s in self._pending.values())

    def committable(self) -> dict[P, int]:
        """Offsets that moved since the last `mark_committed`."""
        result: dict[P, int] = {}
        for partition, nxt in self._next.items():
            pending = self._pending.get(partition)
            offset = min(pending) if pending else nxt
            if offset > self._committed.get(partition, -1):
                result[partition] = offset
        return result

    def mark_committed(self, offsets: dict[P, int]) -> None:
        for partition, offset in offsets.items():
            self._committed[partition] = max(self._committed.get(partition, -1), offset)

    def forget(self, partition: P) -> None:
        """The partition was revoked: its offsets are another consumer's business now."""
        self._pending.pop(partition, None)
        self._next.pop(partition, None)
        self._committed.pop(partition, None)


@dataclass(frozen=True)
class Work:
    run: Callable[[], Awaitable[None]]
    done: Callable[[], None]


class PlayerQueues:
    """One FIFO and one task per player with work; tasks end when their queue drains."""

    def __init__(self) -> None:
        self._queues: dict[str, deque[Work]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def submit(self, player_id: str, work: Work) -> None:
        self._queues.setdefault(player_id, deque()).append(work)
        if player_id not in self._tasks:
            self._tasks[player_id] = asyncio.create_task(self._drain(player_id), name=f"player:{player_id}")

    @property
    def busy_players(self) -> int:
        return len(self._tasks)

    async def _drain(self, player_id: str) -> None:
        queue = self._queues[player_id]
        try:
            while queue:
                work = queue[0]
                await work.run()
                queue.popleft()
                work.done()
        finally:
            del self._tasks[player_id]
            if not queue:
                del self._queues[player_id]

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError):
                await task
        self._queues.clear()
