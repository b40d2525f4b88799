"""Typed errors: one class per contract error code, grouped by what the caller does about them.

- `RequestError`: the request is wrong; nothing was admitted. Fix it, then send it again.
- `TransactionRejected`: the transaction's final outcome. A retry with the same key replays it.
- `TemporaryError`: retried by the client (same Idempotency-Key) until its retry budget is spent.
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base of every error this package raises."""


class HubConnectionError(HubError):
    """No answer from the gateway after every retry. For a POST the outcome is unknown: send the same request
    again later (same refId, same Idempotency-Key) and the Hub answers with what happened."""


class WebhookVerificationError(HubError):
    """A webhook's signature, timestamp or body did not verify: answer 401 and do not act on it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class StillPending(HubError):
    """The transaction was admitted but was not final when the client stopped following it (HTTP 202).

    It will finish on its own: wait for its webhook, or `wait(ref_id)` again later.
    """

    def __init__(self, transaction: Any) -> None:
        super().__init__(f"transaction {transaction.ref_id} is still {transaction.status}")
        self.transaction = transaction


class ApiError(HubError):
    """An error answer of the gateway: `{"error": {code, message, retryable, correlationId, details}}`."""

    code = ""

    def __init__(self, status: int, error: dict[str, Any], retry_after_s: float | None = None) -> None:
        self.status = status
        self.code = str(error.get("code") or type(self).code)
        self.message = str(error.get("message", ""))
        self.retryable = bool(error.get("retryable", False))
        self.correlation_id: str | None = error.get("correlationId")
        self.details: list[dict[str, Any]] = list(error.get("details") or [])
        self.balance_cents: int | None = error.get("balanceCents")
        self.retry_after_s = retry_after_s
        super().__init__(f"HTTP {status} {self.code}: {self.message}")


class RequestError(ApiError):
    """The request was refused before anything was admitted."""


class InvalidRequest(RequestError):
    code = "INVALID_REQUEST"


class AuthenticationError(RequestError):
    """401: the request's signature did not verify."""


class InvalidSignature(AuthenticationError):
    code = "INVALID_SIGNATURE"


class UnknownClient(AuthenticationError):
    code = "UNKNOWN_CLIENT"


class StaleTimestamp(AuthenticationError):
    code = "STALE_TIMESTAMP"


class UnsupportedCurrency(RequestError):
    code = "UNSUPPORTED_CURRENCY"


class IdempotencyKeyReused(RequestError):
    code = "IDEMPOTENCY_KEY_REUSED"


class DuplicateRefId(RequestError):
    code = "DUPLICATE_REF_ID"


class TransactionNotFound(RequestError):
    code = "TRANSACTION_NOT_FOUND"


class TransactionRejected(ApiError):
    """The transaction's final outcome was not COMPLETED; no money moved (FAILED: see OperatorUnavailable)."""


class PlayerNotFound(TransactionRejected):
    code = "PLAYER_NOT_FOUND"


class CurrencyMismatch(TransactionRejected):
    code = "CURRENCY_MISMATCH"


class InsufficientFunds(TransactionRejected):
    """`balance_cents` is the player's balance at the time."""

    code = "INSUFFICIENT_FUNDS"


class BetNotFound(TransactionRejected):
    code = "BET_NOT_FOUND"


class BetAlreadySettled(TransactionRejected):
    code = "BET_ALREADY_SETTLED"


class BetAlreadyRefunded(TransactionRejected):
    code = "BET_ALREADY_REFUNDED"


class AmountMismatch(TransactionRejected):
    code = "AMOUNT_MISMATCH"


class BetExpired(TransactionRejected):
    """The Hub was overloaded and did not send the BET to the operator within its useful life: nothing was
    debited. Treat the bet as not placed (a new spin is a new refId)."""

    code = "BET_EXPIRED"


class OperatorUnavailable(TransactionRejected):
    """On a transaction: it FAILED (final). On a balance read: retryable, and retried by the client."""

    code = "OPERATOR_UNAVAILABLE"


class TemporaryError(ApiError):
    """The Hub could not take the request now; retried with the same Idempotency-Key."""


class RequestInProgress(TemporaryError):
    code = "REQUEST_IN_PROGRESS"


class RateLimited(TemporaryError):
    code = "RATE_LIMITED"


class ServiceUnavailable(TemporaryError):
    code = "SERVICE_UNAVAILABLE"


class InternalError(TemporaryError):
    code = "INTERNAL_ERROR"


def _leaves(cls: type[ApiError]) -> list[type[ApiError]]:
    subclasses = cls.__subclasses__()
    return [leaf for sub in subclasses for leaf in _leaves(sub)] if subclasses else [cls]


ERRORS: dict[str, type[ApiError]] = {cls.code: cls for cls in _leaves(ApiError)}


def api_error(status: int, body: Any, retry_after_s: float | None) -> ApiError:
    """The typed error for an error answer; one without our error body (a proxy's page) is an InternalError
    for 5xx (retried) and a RequestError otherwise."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        fallback: dict[str, Any] = {
            "code": f"HTTP_{status}",
            "message": f"HTTP {status} without the Hub's error body",
            "retryable": status >= 500,
        }
        return (InternalError if status >= 500 else RequestError)(status, fallback, retry_after_s)
    cls = ERRORS.get(str(error.get("code")), InternalError if status >= 500 else RequestError)
    return cls(status, error, retry_after_s)


def outcome_error(transaction: Any) -> ApiError:
    """The typed error of a REJECTED or FAILED transaction read from its resource (`errorCode`), with the status
    the POST answers it with (404 PLAYER_NOT_FOUND, 502 for FAILED, else 422)."""
    code = transaction.error_code or "INTERNAL_ERROR"
    status = {"FAILED": 502}.get(transaction.status, 404 if code == "PLAYER_NOT_FOUND" else 422)
    error = {
        "code": code,
        "message": transaction.reason or f"transaction {transaction.status.lower()}: {code}",
        "retryable": False,
        "balanceCents": transaction.balance_cents if code == "INSUFFICIENT_FUNDS" else None,
    }
    return ERRORS.get(code, TransactionRejected)(status, error)
