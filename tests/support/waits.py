"""The one bounded wait of the test suite: poll a condition until it holds, or fail naming what never happened.

Tests wait for a positive signal (a row, a counter, a delivery), never for a fixed time that is supposed to be
"long enough": on a loaded machine that proves nothing, on an idle one it only slows the suite down.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

Condition = Callable[[], Awaitable[bool]] | Callable[[], bool]


async def eventually(
    condition: Condition, *, timeout_s: float = 60, step_s: float = 0.05, what: str = "condition"
) -> None:
    """Return once `condition()` (sync or async) is true; AssertionError after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(step_s)
