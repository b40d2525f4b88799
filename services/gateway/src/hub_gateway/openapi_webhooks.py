"""The result webhook the Hub sends to the RGS, as an OpenAPI 3.1 `webhooks` entry (contract section 4)."""

from __future__ import annotations

from typing import Any

from hub_common.telemetry import CORRELATION_HEADER
from hub_gateway.openapi_catalogue import TOLERANCE_S, WEBHOOK_EXAMPLE, transaction_example

_DESCRIPTION = f"""Sent once per transaction when it becomes final (COMPLETED, REJECTED, FAILED), to the URL
configured for the client, signed twice with each active webhook secret:

- `X-Signature`: `sha256=` + hex HMAC-SHA256(secret, `{{X-Timestamp}}.{{raw_body}}`);
- Standard Webhooks v1: `webhook-signature`: `v1,` + base64 HMAC-SHA256(secret,
  `{{webhook-id}}.{{webhook-timestamp}}.{{raw_body}}`); a Standard Webhooks library verifies it with the secret
  given as `whsec_` + base64(secret).

During a rotation each header holds one signature per active secret, space-separated: one match is enough.
Reject a timestamp more than {TOLERANCE_S} s from your clock. Delivery is at least once: deduplicate on
`eventId` (= `webhook-id`), stable across retries and replays. Answer 2xx within 10 s once stored; 408, 429,
5xx, timeouts and connection errors are retried (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, +/- 20 %,
`Retry-After` honoured); any other 4xx sends the event to the dead-letter topic at once."""


def _header(name: str, description: str, *, required: bool = True, schema: dict[str, Any] | None = None) -> Any:
    return {
        "name": name,
        "in": "header",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def webhooks(body_ref: dict[str, str]) -> dict[str, Any]:
    examples = {
        "completed": {"value": WEBHOOK_EXAMPLE},
        "rejected": {
            "value": {
                **WEBHOOK_EXAMPLE,
                "eventType": "transaction.rejected",
                "data": transaction_example("REJECTED", reason="insufficient funds", errorCode="INSUFFICIENT_FUNDS"),
            }
        },
        "expired": {
            "value": {
                **WEBHOOK_EXAMPLE,
                "eventType": "transaction.rejected",
                "data": transaction_example(
                    "REJECTED",
                    reason="not sent to the operator within its useful life; nothing was debited",
                    errorCode="BET_EXPIRED",
                ),
            }
        },
    }
    return {
        "transactionResult": {
            "post": {
                "operationId": "transactionResult",
                "summary": "A transaction reached its final state",
                "description": _DESCRIPTION,
                "parameters": [
                    _header("X-Timestamp", "unix seconds of this attempt's signature"),
                    _header("X-Signature", "sha256=<hex> per active secret, space-separated"),
                    _header("webhook-id", "the eventId; stable across retries and replays"),
                    _header("webhook-timestamp", "unix seconds, as X-Timestamp"),
                    _header("webhook-signature", "v1,<base64> per active secret, space-separated"),
                    _header(
                        "X-Attempt", "1 on the first attempt", schema={"type": "string", "pattern": "^[1-9][0-9]*$"}
                    ),
                    _header(
                        "X-Replay",
                        "present on a replay by an SRE",
                        required=False,
                        schema={"type": "string", "enum": ["true"]},
                    ),
                    _header(CORRELATION_HEADER, "the correlation id of the RGS request that caused it"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body_ref, "examples": examples}},
                },
                "responses": {
                    "2XX": {"description": "stored (or already seen): delivered"},
                    "4XX": {"description": "408 and 429 are retried; any other 4xx dead-letters the event at once"},
                    "5XX": {"description": "retried on the schedule"},
                },
            }
        }
    }
