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
    # A WIN or REFUND: money owed to the player.
    credit: bool = False


class PlayerQueues:
    """One FIFO and one task per player with work; tasks end when their queue drains.

    A credit queued behind other work of its player calls `on_credit_behind(player_id)`: the work ahead of it
    (a BET waiting for operator budget) is then served with the credit's urgency (`Budget.promote`), so a WIN
    never waits behind other players' BETs because its own player's BET is ahead of it.
    """

    def __init__(self, on_credit_behind: Callable[[str], object] | None = None) -> None:
        self._queues: dict[str, deque[Work]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._on_credit_behind = on_credit_behind

    def submit(self, player_id: str, work: Work) -> None:
        queue = self._queues.setdefault(player_id, deque())
        queue.append(work)
        if work.credit and len(queue) > 1 and self._on_credit_behind is not None:
            self._on_credit_behind(player_id)
        if player_id not in self._tasks:
            self._tasks[player_id] = asyncio.create_task(self._drain(player_id), name=f"player:{player_id}")

    def credit_waiting(self, player_id: str) -> bool:
        """A WIN or REFUND of this player is queued behind the work running now."""
        queue = self._queues.get(player_id)
        return queue is not None and any(work.credit for work in list(queue)[1:])

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
