"""Fault injection for `/v2` calls; decisions come from one seedable RNG so a test run can be replayed."""

from __future__ import annotations

import random

from mock_operator.models import FaultConfig


class Faults:
    def __init__(self, *, default_hang_ms: int, default_seed: int | None) -> None:
        self._default_hang_ms = default_hang_ms
        self._default_seed = default_seed
        self.config = FaultConfig()
        self._remaining429 = 0
        self._rng = random.Random(default_seed)

    def set(self, config: FaultConfig) -> None:
        """Replace the whole fault profile (fields left out are off) and restart the RNG from its seed."""
        self.config = config
        self._remaining429 = config.force429
        self._rng = random.Random(config.seed if config.seed is not None else self._default_seed)

    def clear(self) -> None:
        self.set(FaultConfig())

    def take_forced_429(self) -> int | None:
        """`Retry-After` seconds if this call is one of the forced 429s, else `None`."""
        if self._remaining429 <= 0:
            return None
        self._remaining429 -= 1
        return self.config.retry_after_s

    def roll(self, rate: float) -> bool:
        # No draw for a disabled fault, so enabling one fault does not shift the sequence of another's draws.
        return rate > 0 and self._rng.random() < rate

    @property
    def latency_s(self) -> float:
        return self.config.latency_ms / 1000

    @property
    def hang_s(self) -> float:
        hang_ms = self.config.hang_ms if self.config.hang_ms is not None else self._default_hang_ms
        return hang_ms / 1000

    @property
    def remaining429(self) -> int:
        return self._remaining429
