"""A plain-text progress bar for long hubctl runs (replays, redrives), written to stderr.

Shown only when stderr is a terminal or `--progress` asks for it, so `--json` on stdout and logs of scripted
runs stay clean. Redraws are throttled: a bulk replay of thousands of rows must not spend its time printing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

WIDTH = 30


def wanted(flag: bool, stream: TextIO | None = None) -> bool:
    """`--progress` forces the bar; otherwise only an interactive stderr gets one."""
    if flag:
        return True
    target = stream or sys.stderr
    isatty = getattr(target, "isatty", None)
    return bool(isatty and isatty())


def render_line(label: str, done: int, total: int, elapsed_s: float) -> str:
    fraction = done / total if total else 1.0
    filled = int(WIDTH * fraction)
    rate = done / elapsed_s if elapsed_s > 0 else 0.0
    eta = (total - done) / rate if rate > 0 else None
    eta_text = f"eta {eta:.0f}s" if eta is not None else "eta -"
    return f"{label} [{'#' * filled}{'.' * (WIDTH - filled)}] {done}/{total} {fraction:4.0%} {rate:.1f}/s {eta_text}"


class Progress:
    """`advance()` after each item; `close()` ends the line. A disabled bar costs nothing and prints nothing."""

    def __init__(
        self,
        label: str,
        total: int,
        *,
        enabled: bool,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_interval_s: float = 0.1,
    ) -> None:
        self._label = label
        self._total = total
        self._enabled = enabled and total > 0
        self._stream = stream or sys.stderr
        self._clock = clock
        self._min_interval_s = min_interval_s
        self._started = clock()
        self._last_draw = float("-inf")
        self.done = 0

    def advance(self, count: int = 1) -> None:
        self.done += count
        if not self._enabled:
            return
        now = self._clock()
        if self.done >= self._total or now - self._last_draw >= self._min_interval_s:
            self._draw(now)

    def close(self) -> None:
        if self._enabled:
            self._draw(self._clock())
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, now: float) -> None:
        self._last_draw = now
        self._stream.write("\r" + render_line(self._label, self.done, self._total, now - self._started))
        self._stream.flush()
