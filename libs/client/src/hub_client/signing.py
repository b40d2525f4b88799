"""Request signing and webhook verification, written from the contract (docs/contract.md sections 1 and 4).

The formats are the contract, not an import: an RGS installs this package alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping, Sequence

from hub_client.errors import WebhookVerificationError

SIGNATURE_PREFIX = "sha256="
TOLERANCE_S = 300


def _key(secret: str) -> bytes:
    return secret.encode()


def sign_request(secret: str, timestamp: str, method: str, path_with_query: str, body: bytes) -> str:
    """`X-Signature`: hex HMAC-SHA256 over `{timestamp}.{METHOD}.{path_with_query}.{raw_body}`."""
    message = f"{timestamp}.{method.upper()}.{path_with_query}.".encode() + body
    return SIGNATURE_PREFIX + hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def signed_headers(
    client_id: str, secret: str, method: str, path_with_query: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """The three authentication headers of one attempt (a retry is signed again, with a fresh timestamp)."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        "X-Client-Id": client_id,
        "X-Timestamp": timestamp,
        "X-Signature": sign_request(secret, timestamp, method, path_with_query, body),
    }


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-Signature` family: hex HMAC-SHA256 over `{timestamp}.{raw_body}`."""
    return SIGNATURE_PREFIX + hmac.new(_key(secret), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def standard_webhook_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks family: `v1,` + base64 HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`."""
    digest = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_webhooks_secret(secret: str) -> str:
    """The `whsec_` form of a webhook secret, for a Standard Webhooks library (same HMAC key bytes)."""
    return "whsec_" + base64.b64encode(_key(secret)).decode()


def _check_timestamp(value: str | None, name: str, now: float, tolerance_s: int) -> str:
    if not value or not value.isdigit():
        raise WebhookVerificationError("STALE_TIMESTAMP", f"{name} is missing or not unix seconds")
    if abs(now - int(value)) > tolerance_s:
        raise WebhookVerificationError("STALE_TIMESTAMP", f"{name} is more than {tolerance_s} s from this clock")
    return value


def _any_matches(expected: Iterable[str], presented: Sequence[str]) -> bool:
    # Every pair is compared (no early exit), so timing does not tell which secret or signature matched.
    matched = False
    for candidate in expected:
        for signature in presented:
            matched |= hmac.compare_digest(candidate.encode(), signature.encode())
    return matched


def verify_signatures(
    headers: Mapping[str, str],
    body: bytes,
    secrets: Sequence[str],
    *,
    tolerance_s: int = TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Both families must be present and verify with one of `secrets` (the Hub always sends both).

    During a rotation the Hub signs with every active secret (space-separated signatures); any one matching
    is enough. Raises `WebhookVerificationError`.
    """
    if not secrets:
        raise ValueError("at least one webhook secret is required")
    current = time.time() if now is None else now
    lower = {name.lower(): value for name, value in headers.items()}
    timestamp = _check_timestamp(lower.get("x-timestamp"), "X-Timestamp", current, tolerance_s)
    plain = [webhook_signature(s, timestamp, body) for s in secrets]
    if not _any_matches(plain, lower.get("x-signature", "").split()):
        raise WebhookVerificationError("INVALID_SIGNATURE", "X-Signature does not match the body")
    msg_id = lower.get("webhook-id")
    if not msg_id:
        raise WebhookVerificationError("INVALID_SIGNATURE", "webhook-id header is missing")
    std_timestamp = _check_timestamp(lower.get("webhook-timestamp"), "webhook-timestamp", current, tolerance_s)
    standard = [standard_webhook_signature(s, msg_id, std_timestamp, body) for s in secrets]
    if not _any_matches(standard, lower.get("webhook-signature", "").split()):
        raise WebhookVerificationError("INVALID_SIGNATURE", "webhook-signature does not match the body")
