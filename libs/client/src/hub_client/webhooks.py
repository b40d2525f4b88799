"""`verify_webhook`: what an RGS calls first in its webhook handler (contract section 4)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from hub_client.errors import WebhookVerificationError
from hub_client.models import Transaction, WebhookEvent, parse_time
from hub_client.signing import TOLERANCE_S, verify_signatures


def verify_webhook(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> WebhookEvent:
    """Verify a result webhook and return its event; raise `WebhookVerificationError` (answer 401) otherwise.

    `body` is the raw request body, before any JSON parsing; `headers` any mapping (names in any case);
    `secrets` the webhook secrets currently active for you (two during a rotation). Both signature families
    (`X-Signature`, Standard Webhooks) must verify, with timestamps within `tolerance_s` of this clock.
    """
    verify_signatures(headers, body, secrets, tolerance_s=tolerance_s, now=now)
    lower = {name.lower(): value for name, value in headers.items()}
    try:
        event = json.loads(body)
        transaction = Transaction.from_wire(event["data"])
        event_id, event_type = str(event["eventId"]), str(event["eventType"])
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookVerificationError("INVALID_REQUEST", f"signed body is not a result webhook ({exc!r})") from None
    if event_id != lower.get("webhook-id"):
        raise WebhookVerificationError("INVALID_SIGNATURE", "webhook-id and the body's eventId differ")
    attempt = lower.get("x-attempt", "1")
    return WebhookEvent(
        event_id=event_id,
        event_type=event_type,
        occurred_at=parse_time(event.get("occurredAt")),
        transaction=transaction,
        attempt=int(attempt) if attempt.isdigit() else 1,
        replay=lower.get("x-replay", "").lower() == "true",
    )
