from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from pydantic import SecretStr

from hub_client import WebhookVerificationError
from hub_client.signing import verify_signatures
from hub_common import signing
from hub_common.errors import SignatureError

SECRET = SecretStr("s3cret")
OLD = SecretStr("old-secret")
NOW = 1_700_000_000.0


def test_request_signature_matches_contract_formula() -> None:
    body = b'{"refId":"bet-1"}'
    expected = hmac.new(b"s3cret", b"1700000000.POST./v1/transactions?x=1." + body, hashlib.sha256).hexdigest()
    assert signing.sign_request(SECRET, "1700000000", "post", "/v1/transactions?x=1", body) == "sha256=" + expected


def test_any_active_secret_verifies_during_rotation() -> None:
    headers = signing.request_headers(OLD, "POST", "/v1/transactions", b"{}", now=NOW)
    signing.verify_request(
        [SECRET, OLD],
        timestamp=headers["X-Timestamp"],
        signature=headers["X-Signature"],
        method="POST",
        path_with_query="/v1/transactions",
        body=b"{}",
        now=NOW,
    )


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"body": b'{"x":1}'}, signing.INVALID_SIGNATURE),
        ({"path_with_query": "/v1/other"}, signing.INVALID_SIGNATURE),
        ({"method": "GET"}, signing.INVALID_SIGNATURE),
        ({"signature": None}, signing.INVALID_SIGNATURE),
        ({"signature": "md5=abc"}, signing.INVALID_SIGNATURE),
        ({"timestamp": None}, signing.STALE_TIMESTAMP),
        ({"timestamp": "yesterday"}, signing.STALE_TIMESTAMP),
        ({"now": NOW + 301}, signing.STALE_TIMESTAMP),
        ({"now": NOW - 301}, signing.STALE_TIMESTAMP),
    ],
)
def test_request_verification_failures(change: dict[str, object], code: str) -> None:
    headers = signing.request_headers(SECRET, "POST", "/v1/transactions", b"{}", now=NOW)
    kwargs: dict[str, object] = {
        "timestamp": headers["X-Timestamp"],
        "signature": headers["X-Signature"],
        "method": "POST",
        "path_with_query": "/v1/transactions",
        "body": b"{}",
        "now": NOW,
    }
    kwargs.update(change)
    with pytest.raises(SignatureError) as info:
        signing.verify_request([SECRET], **kwargs)  # type: ignore[arg-type]
    assert info.value.code == code
    assert "s3cret" not in str(info.value)


def test_window_edge_is_inclusive() -> None:
    headers = signing.request_headers(SECRET, "GET", "/v1/x", b"", now=NOW)
    signing.verify_request(
        [SECRET],
        timestamp=headers["X-Timestamp"],
        signature=headers["X-Signature"],
        method="GET",
        path_with_query="/v1/x",
        body=b"",
        now=NOW + 300,
    )


def test_webhook_headers_carry_one_signature_per_secret_and_verify() -> None:
    body = b'{"eventId":"e-1"}'
    headers = signing.webhook_headers([SECRET, OLD], "e-1", body, now=NOW)
    assert len(headers["X-Signature"].split()) == 2
    assert len(headers["webhook-signature"].split()) == 2
    assert headers["webhook-id"] == "e-1"
    verify_signatures(headers, body, [OLD.get_secret_value()], now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_signatures(headers, body, ["other"], now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_signatures(headers, body + b" ", [SECRET.get_secret_value()], now=NOW)


def test_standard_webhooks_signature_verifies_with_whsec_key() -> None:
    # What a Standard Webhooks library does with the `whsec_` secret we hand out.
    body = b'{"a":1}'
    headers = signing.webhook_headers([SECRET], "msg_1", body, now=NOW)
    key = base64.b64decode(signing.standard_webhook_secret(SECRET).removeprefix("whsec_"))
    digest = hmac.new(key, f"msg_1.{headers['webhook-timestamp']}.".encode() + body, hashlib.sha256).digest()
    assert headers["webhook-signature"] == "v1," + base64.b64encode(digest).decode()


def test_webhook_headers_need_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        signing.webhook_headers([], "e", b"")


def test_a_signer_is_reusable_across_deliveries() -> None:
    signer = signing.WebhookSigner([SECRET, OLD])
    first = signer.headers("e-1", b'{"a":1}', now=NOW)
    signer.headers("other", b"{}", now=NOW)
    assert signer.headers("e-1", b'{"a":1}', now=NOW) == first
    verify_signatures(first, b'{"a":1}', [OLD.get_secret_value()], now=NOW)
