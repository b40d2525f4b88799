"""Records the dispatcher writes to Kafka: retry-tier records and dead letters (schemas `<Name>/1`).

hubctl reads `WebhookDeadLetter` from `hub.webhooks.dlq`; the delivery row in `webhook_outbox` stays the
source of truth for status and history.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from hub_common.schemas import WireModel


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


class Attempt(WireModel):
    """One delivery attempt as kept in `webhook_outbox.attempts` and in the dead letter."""

    attempt: int
    at: datetime
    status: int | None = None
    latency_ms: float
    error: str | None = None
    response: str | None = None
    outcome: Outcome
    replay: bool = False
    # True when the endpoint's circuit was open and no HTTP call was made.
    skipped: bool = False


class WebhookRetry(WireModel):
    """A delivery waiting on `hub.webhooks.retry.<tier>` until `due_at`; `attempt` is the one to make."""

    event_id: str
    client_id: str
    event_type: str
    attempt: int
    due_at: datetime
    replay: bool = False


class WebhookDeadLetter(WireModel):
    """An exhausted or non-retryable delivery on `hub.webhooks.dlq`, with its whole history."""

    event_id: str
    client_id: str
    event_type: str
    transaction_id: str | None
    reason: str
    retry_count: int
    body: dict[str, Any]
    attempts: list[Attempt]
    dead_lettered_at: datetime
