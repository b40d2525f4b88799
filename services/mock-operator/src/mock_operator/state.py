"""Everything one mock-operator instance holds, built once by `create_app` and handed to the handlers."""

from __future__ import annotations

from dataclasses import dataclass

from mock_operator.faults import Faults
from mock_operator.ratelimit import SlidingWindowLimiter
from mock_operator.settings import MockOperatorSettings
from mock_operator.stats import CallStats
from mock_operator.wallet import Clock, Wallet


@dataclass
class OperatorState:
    settings: MockOperatorSettings
    clock: Clock
    wallet: Wallet
    limiter: SlidingWindowLimiter
    stats: CallStats
    faults: Faults

    @classmethod
    def build(cls, settings: MockOperatorSettings, clock: Clock) -> OperatorState:
        state = cls(
            settings=settings,
            clock=clock,
            wallet=Wallet(clock),
            limiter=SlidingWindowLimiter(settings.rate_limit_per_minute),
            stats=CallStats(),
            faults=Faults(default_hang_ms=settings.hang_ms, default_seed=settings.fault_seed),
        )
        state.wallet.seed(settings.players)
        return state

    def reset(self) -> None:
        """Back to the state of a fresh start: seeded players only, no history, no faults, default limit."""
        self.wallet.reset()
        self.wallet.seed(self.settings.players)
        self.limiter.limit = self.settings.rate_limit_per_minute
        self.limiter.reset()
        self.stats.reset()
        self.faults.clear()
