"""Per-player ordering with concurrency across players.

Commands of one player run one after another in arrival order (one queue and one task per busy player);
different players run concurrently. (The offsets that are safe to commit meanwhile: `hub_common.offsets`.)
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass

log = logging.getLogger(__name__)


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
