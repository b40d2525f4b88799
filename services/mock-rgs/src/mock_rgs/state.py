"""Everything one mock-RGS instance holds, built once by `create_app`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mock_rgs.behaviour import Responder
from mock_rgs.deliveries import DeliveryLog
from mock_rgs.settings import MockRgsSettings

Clock = Callable[[], float]


@dataclass
class RgsState:
    settings: MockRgsSettings
    deliveries: DeliveryLog
    responder: Responder
    clock: Clock

    @classmethod
    def build(cls, settings: MockRgsSettings, clock: Clock) -> RgsState:
        return cls(settings, DeliveryLog(settings.max_recorded), Responder(settings.behaviour_seed), clock)

    def reset(self) -> None:
        self.deliveries.reset()
        self.responder.clear()
