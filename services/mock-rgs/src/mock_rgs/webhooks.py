"""`POST /webhooks`: verify both signature families, record the delivery, answer per behaviour."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Counter

from hub_client import WebhookVerificationError
from hub_client.signing import verify_signatures
from mock_rgs import http_errors
from mock_rgs.models import Delivery
from mock_rgs.state import RgsState

log = logging.getLogger(__name__)

DELIVERIES = Counter("mock_rgs_webhooks_total", "Webhook deliveries received, by answer", ["status", "verified"])


class WebhookReceiver:
    def __init__(self, state: RgsState) -> None:
        self._state = state
        self._secrets = [secret.get_secret_value() for secret in state.settings.secrets]

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/webhooks", self.receive)

    async def receive(self, request: web.Request) -> web.Response:
        received_at = datetime.fromtimestamp(self._state.clock(), UTC)
        raw = await request.read()
        headers = request.headers
        try:
            # The RGS side of the contract, as an RGS does it: with the client library's verification.
            verify_signatures(
                request.headers,
                raw,
                self._secrets,
                now=self._state.clock(),
                tolerance_s=self._state.settings.timestamp_tolerance_s,
            )
        except WebhookVerificationError as exc:
            self._record(headers, raw, received_at, verified=False, status=401)
            log.warning("webhook signature rejected", extra={"reason": exc.message})
            return http_errors.signature_error(exc)
        answer = self._state.responder.next_answer()
        self._record(headers, raw, received_at, verified=True, status=answer.status)
        if answer.delay_s > 0:
            await asyncio.sleep(answer.delay_s)
        if 200 <= answer.status < 300:
            return web.json_response({"received": True}, status=answer.status)
        return http_errors.behaviour_error(answer.status)

    def _record(
        self, headers: Mapping[str, str], raw: bytes, received_at: datetime, *, verified: bool, status: int
    ) -> None:
        body = _parse_body(raw)
        fields = body if isinstance(body, dict) else {}
        event_id = fields.get("eventId") or headers.get("webhook-id")
        self._state.deliveries.record(
            Delivery(
                event_id=event_id,
                event_type=fields.get("eventType"),
                attempt=_int_or_none(headers.get("X-Attempt")),
                replay=headers.get("X-Replay", "").lower() == "true",
                verified=verified,
                status=status,
                headers=dict(headers),
                body=body,
                received_at=received_at,
            )
        )
        DELIVERIES.labels(str(status), str(verified).lower()).inc()


def _parse_body(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode(errors="replace")


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None
