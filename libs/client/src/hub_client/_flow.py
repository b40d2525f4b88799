"""What the client does, without doing I/O: each operation is a generator that yields `Send` and `Sleep` steps.

The blocking and the asyncio client drive the same generators (`client.py`), so signing, retries, the
Idempotency-Key and the 202 follow-up are written once.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Generator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from hub_client.errors import ApiError, HubConnectionError, StillPending, api_error, outcome_error
from hub_client.models import Balance, Transaction, TransactionRequest
from hub_client.signing import signed_headers


@dataclass(frozen=True)
class Send:
    request: httpx.Request


@dataclass(frozen=True)
class Sleep:
    seconds: float


T = TypeVar("T")
Step = Send | Sleep
# A transport error (timeout, refused connection) is thrown into the generator at its `Send`.
Flow = Generator[Step, httpx.Response | None, T]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one request: every error the Hub marks `retryable` (429, 503, 409 REQUEST_IN_PROGRESS, ...)
    and every transport error, always with the same body and Idempotency-Key, each attempt signed afresh."""

    attempts: int = 5
    # Without a Retry-After: backoff_s, doubled per attempt up to max_backoff_s, +/- 20 % jitter.
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    # A Retry-After longer than this is not waited out: the error goes to the caller, who knows better.
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, retry_after_s: float | None) -> float | None:
        """Seconds to wait before the next attempt after `attempt` failed; None: give up."""
        if attempt >= self.attempts:
            return None
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.max_retry_after_s else None
        backoff: float = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        return backoff * random.uniform(0.8, 1.2)


@dataclass(frozen=True)
class FollowPolicy:
    """How a 202 is followed to the final state: `GET Location`, every interval_s doubling up to max_interval_s."""

    timeout_s: float = 30.0
    interval_s: float = 0.25
    max_interval_s: float = 4.0


def retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def transaction_path(ref_id: str) -> str:
    return f"/v1/transactions/{quote(ref_id, safe='')}"


class Flows:
    def __init__(self, base_url: str, client_id: str, secret: str, retry: RetryPolicy, follow: FollowPolicy) -> None:
        self._base = base_url.rstrip("/")
        self._client_id = client_id
        self._secret = secret
        self._retry = retry
        self._follow = follow

    def _request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Request:
        request = httpx.Request(method, self._base + path, content=body or None, headers=headers)
        # Signed over the bytes that go out: the encoded path exactly as sent, the body as serialised.
        auth = signed_headers(self._client_id, self._secret, method, request.url.raw_path.decode(), body)
        request.headers.update(auth)
        return request

    def call(
        self, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Flow[httpx.Response]:
        """One request with its retries; returns the 2xx response or raises the typed error."""
        attempt = 0
        while True:
            attempt += 1
            try:
                response = yield Send(self._request(method, path, body, headers or {}))
            except httpx.TransportError as exc:
                delay = self._retry.delay(attempt, None)
                if delay is None:
                    raise HubConnectionError(f"{method} {path}: no answer after {attempt} attempts ({exc!r})") from exc
                yield Sleep(delay)
                continue
            assert response is not None
            if response.status_code < 400:
                return response
            error: ApiError = api_error(response.status_code, _json(response), retry_after(response.headers))
            delay = self._retry.delay(attempt, error.retry_after_s) if error.retryable else None
            if delay is None:
                raise error
            yield Sleep(delay)

    def submit(self, request: TransactionRequest, idempotency_key: str | None, follow: bool) -> Flow[Transaction]:
        # The refId is the default key: a process that restarts and sends the transaction again reuses it too.
        headers = {"Idempotency-Key": idempotency_key or request.ref_id, "Content-Type": "application/json"}
        body = json.dumps(request.to_wire(), separators=(",", ":")).encode()
        response = yield from self.call("POST", "/v1/transactions", body=body, headers=headers)
        transaction = Transaction.from_wire(response.json())
        if response.status_code != 202 or not follow:
            return transaction
        location = response.headers.get("Location") or transaction_path(request.ref_id)
        # The Hub says when a poll can first show an outcome (its predicted wait): not sooner, and not at all when
        # that is past the follow timeout (the webhook will tell).
        first = retry_after(response.headers)
        if first is not None and first >= self._follow.timeout_s:
            raise StillPending(transaction)
        transaction = yield from self.wait(location, self._follow.timeout_s, first_poll_s=first)
        if transaction.status != "COMPLETED":
            if transaction.error_code:
                raise outcome_error(transaction)
            # An older Hub's resource carries no error code: replaying the request answers with it (and raises).
            yield from self.call("POST", "/v1/transactions", body=body, headers=headers)
        return transaction

    def wait(self, path: str, timeout_s: float, *, first_poll_s: float | None = None) -> Flow[Transaction]:
        """Poll until the transaction is final; StillPending when `timeout_s` runs out first."""
        deadline = time.monotonic() + timeout_s
        interval = self._follow.interval_s
        if first_poll_s is not None and first_poll_s > interval:
            yield Sleep(min(first_poll_s, timeout_s))
        while True:
            response = yield from self.call("GET", path)
            transaction = Transaction.from_wire(response.json())
            remaining = deadline - time.monotonic()
            if transaction.is_final:
                return transaction
            if remaining <= 0:
                raise StillPending(transaction)
            yield Sleep(min(interval, remaining))
            interval = min(interval * 2, self._follow.max_interval_s)

    def get(self, ref_id: str) -> Flow[Transaction]:
        response = yield from self.call("GET", transaction_path(ref_id))
        return Transaction.from_wire(response.json())

    def balance(self, player_id: str) -> Flow[Balance]:
        response = yield from self.call("GET", f"/v1/players/{quote(player_id, safe='')}/balance")
        body = response.json()
        return Balance(body["playerId"], body["balanceCents"], body["currency"])
