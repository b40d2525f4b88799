"""Decides how the next verified delivery is answered."""

from __future__ import annotations

import random
from dataclasses import dataclass

from mock_rgs.models import Behaviour

OK = 200


@dataclass(frozen=True)
class Answer:
    status: int
    delay_s: float


class Responder:
    def __init__(self, default_seed: int | None) -> None:
        self._default_seed = default_seed
        self.behaviour = Behaviour()
        self._remaining: int | None = None
        self._rng = random.Random(default_seed)

    def set(self, behaviour: Behaviour) -> None:
        """Replace the behaviour (fields left out are off) and restart the RNG from its seed."""
        self.behaviour = behaviour
        self._remaining = behaviour.count
        self._rng = random.Random(behaviour.seed if behaviour.seed is not None else self._default_seed)

    def clear(self) -> None:
        self.set(Behaviour())

    def next_answer(self) -> Answer:
        delay_s = self.behaviour.delay_ms / 1000
        if self.behaviour.status is not None and (self._remaining is None or self._remaining > 0):
            if self._remaining is not None:
                self._remaining -= 1
            return Answer(self.behaviour.status, delay_s)
        if self.behaviour.fail_rate > 0 and self._rng.random() < self.behaviour.fail_rate:
            return Answer(self.behaviour.fail_status, delay_s)
        return Answer(OK, delay_s)

    @property
    def remaining(self) -> int | None:
        return self._remaining
