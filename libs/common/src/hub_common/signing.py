"""HMAC signatures of the contract, both directions.

- Requests (RGS -> gateway, Hub -> operator): `sha256=` + hex HMAC-SHA256 over
  `{timestamp}.{METHOD}.{path_with_query}.{raw_body}` (contract sections 1 and 3).
- Webhooks (Hub -> RGS): `X-Signature` = `sha256=` + hex HMAC over `{timestamp}.{raw_body}`, one per active
  secret, space-separated; plus Standard Webhooks v1 (`webhook-id`, `webhook-timestamp`,
  `webhook-signature: v1,<base64 HMAC over "{id}.{timestamp}.{body}">`) (section 4).
Comparisons are constant-time; secrets never appear in error messages. Webhooks are verified on the RGS
side, by the client library (hub_client.verify_webhook), which the mock RGS and the tests use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Sequence

from pydantic import SecretStr

from hub_common.errors import SignatureError

SIGNATURE_PREFIX = "sha256="
DEFAULT_TOLERANCE_S = 300

INVALID_SIGNATURE = "INVALID_SIGNATURE"
STALE_TIMESTAMP = "STALE_TIMESTAMP"
UNKNOWN_CLIENT = "UNKNOWN_CLIENT"


def _hmac_hex(secret: SecretStr, message: bytes) -> str:
    return hmac.new(secret.get_secret_value().encode(), message, hashlib.sha256).hexdigest()


def request_message(timestamp: str, method: str, path_with_query: str, body: bytes) -> bytes:
    return f"{timestamp}.{method.upper()}.{path_with_query}.".encode() + body


def sign_request(secret: SecretStr, timestamp: str, method: str, path_with_query: str, body: bytes) -> str:
    return SIGNATURE_PREFIX + _hmac_hex(secret, request_message(timestamp, method, path_with_query, body))


def request_headers(
    secret: SecretStr, method: str, path_with_query: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """`X-Timestamp` and `X-Signature` for an outgoing signed request."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "X-Timestamp": timestamp,
        "X-Signature": sign_request(secret, timestamp, method, path_with_query, body),
    }


def check_timestamp(timestamp: str | None, *, now: float | None = None, tolerance_s: int = DEFAULT_TOLERANCE_S) -> int:
    if not timestamp:
        raise SignatureError(STALE_TIMESTAMP, "X-Timestamp header is missing")
    try:
        value = int(timestamp)
    except ValueError:
        raise SignatureError(STALE_TIMESTAMP, "X-Timestamp must be unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - value) > tolerance_s:
        raise SignatureError(STALE_TIMESTAMP, f"X-Timestamp is more than {tolerance_s} s from the server clock")
    return value


def _matches_any(candidates: Iterable[str], presented: str) -> bool:
    # Compare against every secret (no early exit) so timing does not reveal which one matched.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate.encode(), presented.encode())
    return matched


def verify_request(
    secrets: Sequence[SecretStr],
    *,
    timestamp: str | None,
    signature: str | None,
    method: str,
    path_with_query: str,
    body: bytes,
    now: float | None = None,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> None:
    """Raise `SignatureError` unless one of `secrets` signed this request within the time window."""
    check_timestamp(timestamp, now=now, tolerance_s=tolerance_s)
    assert timestamp is not None
    if not signature or not signature.startswith(SIGNATURE_PREFIX):
        raise SignatureError(INVALID_SIGNATURE, "X-Signature header is missing or not 'sha256=<hex>'")
    expected = (sign_request(s, timestamp, method, path_with_query, body) for s in secrets)
    if not _matches_any(expected, signature):
        raise SignatureError(INVALID_SIGNATURE, "X-Signature does not match the request")


# --- webhooks (Hub -> RGS) ---------------------------------------------------------------------------------


def webhook_signature(secret: SecretStr, timestamp: str, body: bytes) -> str:
    return SIGNATURE_PREFIX + _hmac_hex(secret, timestamp.encode() + b"." + body)


def standard_webhook_signature(secret: SecretStr, msg_id: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(
        secret.get_secret_value().encode(), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256
    ).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_webhook_secret(secret: SecretStr) -> str:
    """The `whsec_` form an RGS gives its Standard Webhooks library; it decodes back to the same key bytes."""
    return "whsec_" + base64.b64encode(secret.get_secret_value().encode()).decode()


class WebhookSigner:
    """Both webhook signature families for one endpoint, each secret's HMAC key schedule computed once.

    `hmac.new` per call re-derives the key pads; `copy()` of a keyed object does not (the dispatcher signs
    every delivery with every active secret).
    """

    def __init__(self, secrets: Sequence[SecretStr]) -> None:
        if not secrets:
            raise ValueError("at least one webhook secret is required")
        self._keys = [hmac.new(s.get_secret_value().encode(), digestmod=hashlib.sha256) for s in secrets]

    def _sign(self, message: bytes) -> list[bytes]:
        digests = []
        for key in self._keys:
            mac = key.copy()
            mac.update(message)
            digests.append(mac.digest())
        return digests

    def headers(self, event_id: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
        """One delivery attempt's headers: one signature per active secret in each family."""
        timestamp = str(int(time.time() if now is None else now))
        plain = self._sign(timestamp.encode() + b"." + body)
        standard = self._sign(f"{event_id}.{timestamp}.".encode() + body)
        return {
            "X-Timestamp": timestamp,
            "X-Signature": " ".join(SIGNATURE_PREFIX + d.hex() for d in plain),
            "webhook-id": event_id,
            "webhook-timestamp": timestamp,
            "webhook-signature": " ".join("v1," + base64.b64encode(d).decode() for d in standard),
        }


def webhook_headers(
    secrets: Sequence[SecretStr], event_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """Both signature families for one delivery attempt; one signature per active secret."""
    return WebhookSigner(secrets).headers(event_id, body, now=now)
