"""The record of every webhook delivery, and the counts a test asserts on.

A *duplicate* is a verified delivery of an event we had already acknowledged with 2xx: the contract's
"delivered" is a 2xx answer, so a retry after our 500 is a redelivery, not a duplicate.
"""

from __future__ import annotations

from collections import deque

from mock_rgs.models import Delivery, WebhooksOut


class DeliveryLog:
    def __init__(self, max_recorded: int) -> None:
        self._received: deque[Delivery] = deque(maxlen=max_recorded)
        self._seen: set[str] = set()
        self._acknowledged: set[str] = set()
        self._duplicates = 0
        self._invalid = 0

    def record(self, delivery: Delivery) -> None:
        self._received.append(delivery)
        if not delivery.verified:
            self._invalid += 1
            return
        if delivery.event_id is None:
            return
        self._seen.add(delivery.event_id)
        if 200 <= delivery.status < 300:
            if delivery.event_id in self._acknowledged:
                self._duplicates += 1
            self._acknowledged.add(delivery.event_id)

    def snapshot(self, event_id: str | None = None) -> WebhooksOut:
        received = [d for d in self._received if event_id is None or d.event_id == event_id]
        return WebhooksOut(
            received=received,
            unique_events=len(self._seen),
            acknowledged_events=len(self._acknowledged),
            duplicates=self._duplicates,
            invalid_signatures=self._invalid,
        )

    def reset(self) -> None:
        self._received.clear()
        self._seen.clear()
        self._acknowledged.clear()
        self._duplicates = 0
        self._invalid = 0
