"""The client's signatures are the Hub's: checked against hub_common.signing (the server side) so the two
independent implementations of the contract's formats cannot drift, and against a Standard Webhooks library."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook
from standardwebhooks import WebhookVerificationError as StandardWebhooksError

from hub_client import WebhookVerificationError, sign_request, standard_webhooks_secret, verify_webhook
from hub_client.signing import signed_headers, standard_webhook_signature, verify_signatures, webhook_signature
from hub_common import signing as server
from hub_common.errors import SignatureError

SECRET = "s3cret-ü"
OLD = "previous-secret"
NOW = 1_700_000_000.0
BODY = b'{"eventId":"e-1","eventType":"transaction.completed","occurredAt":"2024-01-15T10:00:00Z","data":{}}'


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/transactions", b'{"refId":"bet-1","amountCents":250}'),
        ("get", "/v1/transactions/bet%2F1%20x", b""),
        ("GET", "/v1/players/p-1/balance?x=1&y=%C3%BC", b""),
        ("POST", "/v1/transactions", '{"metadata":{"name":"Zoë"}}'.encode()),
    ],
)
def test_request_signatures_are_the_servers(method: str, path: str, body: bytes) -> None:
    ours = sign_request(SECRET, "1700000000", method, path, body)
    assert ours == server.sign_request(SecretStr(SECRET), "1700000000", method, path, body)
    headers = signed_headers("rgs-1", SECRET, method, path, body, now=NOW)
    assert headers["X-Client-Id"] == "rgs-1"
    # What the gateway runs on every request, with one of two active secrets.
    server.verify_request(
        [SecretStr(OLD), SecretStr(SECRET)],
        timestamp=headers["X-Timestamp"],
        signature=headers["X-Signature"],
        method=method.upper(),
        path_with_query=path,
        body=body,
        now=NOW + 299,
    )
    with pytest.raises(SignatureError):
        server.verify_request(
            [SecretStr(SECRET)],
            timestamp=headers["X-Timestamp"],
            signature=headers["X-Signature"],
            method=method,
            path_with_query=path + "x",
            body=body,
            now=NOW,
        )


def test_webhook_signatures_are_the_servers() -> None:
    assert webhook_signature(SECRET, "1700000000", BODY) == server.webhook_signature(
        SecretStr(SECRET), "1700000000", BODY
    )
    assert standard_webhook_signature(SECRET, "e-1", "1700000000", BODY) == server.standard_webhook_signature(
        SecretStr(SECRET), "e-1", "1700000000", BODY
    )
    assert standard_webhooks_secret(SECRET) == server.standard_webhook_secret(SecretStr(SECRET))


def test_what_the_dispatcher_signs_verifies_during_a_rotation() -> None:
    headers = server.WebhookSigner([SecretStr(SECRET), SecretStr(OLD)]).headers("e-1", BODY, now=NOW)
    verify_signatures(headers, BODY, [OLD], now=NOW)
    verify_signatures({k.upper(): v for k, v in headers.items()}, BODY, [SECRET, "other"], now=NOW + 300)


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("body", "INVALID_SIGNATURE"),
        ("secret", "INVALID_SIGNATURE"),
        ("stale", "STALE_TIMESTAMP"),
        ("future", "STALE_TIMESTAMP"),
        ("no-standard-signature", "INVALID_SIGNATURE"),
        ("no-x-signature", "INVALID_SIGNATURE"),
        ("no-webhook-id", "INVALID_SIGNATURE"),
    ],
)
def test_a_webhook_that_does_not_verify_is_refused(change: str, code: str) -> None:
    headers = server.WebhookSigner([SecretStr(SECRET)]).headers("e-1", BODY, now=NOW)
    body, secrets, now = BODY, [SECRET], NOW
    if change == "body":
        body = BODY + b" "
    elif change == "secret":
        secrets = ["other"]
    elif change in ("stale", "future"):
        now = NOW + 301 if change == "stale" else NOW - 301
    else:
        del headers[
            {"no-standard-signature": "webhook-signature", "no-x-signature": "X-Signature"}.get(change, "webhook-id")
        ]
    with pytest.raises(WebhookVerificationError) as info:
        verify_signatures(headers, body, secrets, now=now)
    assert info.value.code == code


def test_verify_webhook_returns_the_event() -> None:
    body = (
        b'{"eventId":"e-1","eventType":"transaction.rejected","occurredAt":"2024-01-15T10:00:00Z","data":'
        b'{"transactionId":"t-1","refId":"bet-1","type":"BET","playerId":"p-1","amountCents":250,'
        b'"currency":"EUR","status":"REJECTED","reason":"insufficient funds","createdAt":"2024-01-15T10:00:00Z",'
        b'"updatedAt":"2024-01-15T10:00:00Z"}}'
    )
    headers = server.WebhookSigner([SecretStr(SECRET)]).headers("e-1", body, now=NOW) | {"X-Attempt": "3"}
    event = verify_webhook(headers, body, [SECRET], now=NOW)
    assert (event.event_id, event.event_type, event.attempt, event.replay) == ("e-1", "transaction.rejected", 3, False)
    assert (event.transaction.ref_id, event.transaction.status, event.transaction.is_final) == (
        "bet-1",
        "REJECTED",
        True,
    )
    # A validly signed body that is not a result webhook is refused too (and never half-parsed).
    other = server.WebhookSigner([SecretStr(SECRET)]).headers("e-1", b"{}", now=NOW)
    with pytest.raises(WebhookVerificationError):
        verify_webhook(other, b"{}", [SECRET], now=NOW)


def test_a_standard_webhooks_library_verifies_the_hubs_signature_unchanged() -> None:
    # The library checks the timestamp against the real clock: sign now.
    headers = server.WebhookSigner([SecretStr(OLD), SecretStr(SECRET)]).headers("e-1", BODY, now=time.time())
    assert Webhook(standard_webhooks_secret(SECRET)).verify(BODY, headers)["eventId"] == "e-1"
    with pytest.raises(StandardWebhooksError):
        Webhook(standard_webhooks_secret("other")).verify(BODY, headers)


def test_the_client_imports_no_package_of_the_hub() -> None:
    # An RGS installs hub-client alone (with httpx): nothing of the Hub may be needed at import time.
    code = (
        "import sys, hub_client; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'hub_common', 'hub_gateway', 'pydantic', 'aiohttp', 'orjson'}))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert run.stdout.strip() == "[]"
