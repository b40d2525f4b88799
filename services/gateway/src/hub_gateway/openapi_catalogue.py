"""What the OpenAPI document says about errors and signing beyond the models: every error code's retry class
and meaning (docs/contract.md section 1.7, checked against it by the tests), the signature scheme, examples."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from hub_common.schemas import ErrorCode, TransactionRequest
from hub_gateway.auth import CLIENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER


class Retry(StrEnum):
    """What an RGS does after an error code (the body's `retryable` flag is true exactly for RETRY)."""

    FIX = "fix"  # the request is wrong and nothing was admitted: fix it, then send it
    FINAL = "final"  # the transaction's outcome: a replay answers the same, do not resend
    RETRY = "retry"  # send the same request again (same Idempotency-Key) after Retry-After or a backoff


ERROR_CATALOGUE: dict[ErrorCode, tuple[Retry, str]] = {
    ErrorCode.INVALID_REQUEST: (Retry.FIX, "malformed JSON, a missing or wrong field or header; see details"),
    ErrorCode.INVALID_SIGNATURE: (Retry.FIX, "X-Signature missing or not matching the request"),
    ErrorCode.UNKNOWN_CLIENT: (Retry.FIX, "X-Client-Id missing or unknown"),
    ErrorCode.STALE_TIMESTAMP: (Retry.FIX, "X-Timestamp missing or more than 300 s from the Hub's clock"),
    ErrorCode.UNSUPPORTED_CURRENCY: (Retry.FIX, "the currency is not one the Hub supports"),
    ErrorCode.IDEMPOTENCY_KEY_REUSED: (Retry.FIX, "this Idempotency-Key was used with another body"),
    ErrorCode.DUPLICATE_REF_ID: (Retry.FIX, "this refId was used with another body (or by another client)"),
    ErrorCode.TRANSACTION_NOT_FOUND: (Retry.FIX, "no transaction with this refId for this client"),
    ErrorCode.PLAYER_NOT_FOUND: (Retry.FINAL, "the operator does not know the player"),
    ErrorCode.CURRENCY_MISMATCH: (Retry.FINAL, "the currency is not the wallet's"),
    ErrorCode.INSUFFICIENT_FUNDS: (Retry.FINAL, "the BET exceeds the balance (error.balanceCents)"),
    ErrorCode.BET_NOT_FOUND: (Retry.FINAL, "the bet this transaction refers to is unknown"),
    ErrorCode.BET_ALREADY_SETTLED: (Retry.FINAL, "REFUND after a WIN on the same round"),
    ErrorCode.BET_ALREADY_REFUNDED: (Retry.FINAL, "the bet (or its round) was refunded"),
    ErrorCode.AMOUNT_MISMATCH: (Retry.FINAL, "REFUND amount differs from the bet's"),
    ErrorCode.BET_EXPIRED: (
        Retry.FINAL,
        "the BET was not sent to the operator within its useful life (overload); nothing was debited",
    ),
    ErrorCode.OPERATOR_UNAVAILABLE: (
        Retry.FINAL,
        "the transaction FAILED (a BET was cancelled at the operator); on a balance read: retry",
    ),
    ErrorCode.REQUEST_IN_PROGRESS: (Retry.RETRY, "the same key or refId is being admitted right now"),
    ErrorCode.RATE_LIMITED: (
        Retry.RETRY,
        "a BET would wait past its useful life, the client holds its share of BETs, or (balance) its reads' share "
        "of the operator budget is spent",
    ),
    ErrorCode.SERVICE_UNAVAILABLE: (Retry.RETRY, "Kafka or PostgreSQL unreachable; nothing was accepted"),
    ErrorCode.INTERNAL_ERROR: (Retry.RETRY, "a Hub bug (never expected); report the correlationId"),
}


def error_code_schema() -> dict[str, Any]:
    """`ErrorCode` as one documented constant per code, each with its retry class (`x-retry`)."""
    return {
        "title": "ErrorCode",
        "type": "string",
        "oneOf": [
            {"const": code.value, "description": f"{meaning}. Retry class: {retry.value}.", "x-retry": retry.value}
            for code, (retry, meaning) in ERROR_CATALOGUE.items()
        ],
    }


TOLERANCE_S = 300
SIGNED_STRING = "{X-Timestamp}.{METHOD}.{path_with_query}.{raw_body}"

_SIGNATURE_DESCRIPTION = f"""HMAC request signature (all three headers on every `/v1` request).

1. `timestamp` = current unix time in seconds; send it as `{TIMESTAMP_HEADER}`.
2. `message` = `{SIGNED_STRING}`: the upper-case method, the path and query exactly as sent
   (percent-encoding included), and the raw body bytes (empty for GET), joined by `.`.
3. `{SIGNATURE_HEADER}` = `sha256=` + lower-case hex HMAC-SHA256(client secret, message).

The timestamp must be within {TOLERANCE_S} s of the Hub's clock (else 401 STALE_TIMESTAMP); each retry is
signed again. Any active secret of the client verifies (two during a rotation)."""


def security_schemes() -> dict[str, Any]:
    return {
        "clientId": {
            "type": "apiKey",
            "in": "header",
            "name": CLIENT_HEADER,
            "description": "The RGS client id; selects the secrets the signature is checked with.",
        },
        "timestamp": {
            "type": "apiKey",
            "in": "header",
            "name": TIMESTAMP_HEADER,
            "description": f"Unix seconds of signing; at most {TOLERANCE_S} s from the Hub's clock.",
        },
        "signature": {
            "type": "apiKey",
            "in": "header",
            "name": SIGNATURE_HEADER,
            "description": _SIGNATURE_DESCRIPTION,
            # Machine-readable for generators and tests: OpenAPI has no HMAC scheme of its own.
            "x-hmac": {
                "algorithm": "HMAC-SHA256",
                "encoding": "hex",
                "prefix": "sha256=",
                "signedString": SIGNED_STRING,
                "clockToleranceSeconds": TOLERANCE_S,
            },
        },
    }


SIGNED: list[dict[str, list[str]]] = [{"clientId": [], "timestamp": [], "signature": []}]

_BET: dict[str, Any] = {
    "refId": "bet-123",
    "type": "BET",
    "playerId": "p-1",
    "amountCents": 250,
    "currency": "EUR",
    "roundId": "r-9",
    "gameId": "slot-7",
    "originalRefId": None,
    "roundClosed": False,
    "metadata": {},
}
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "bet": {"summary": "A BET (debit)", "value": _BET},
    "win": {
        "summary": "A WIN (credit) closing the round",
        "value": {**_BET, "refId": "win-123", "type": "WIN", "amountCents": 600, "roundClosed": True},
    },
    "refund": {
        "summary": "A REFUND cancelling a BET (same amount)",
        "value": {
            "refId": "refund-123",
            "type": "REFUND",
            "playerId": "p-1",
            "amountCents": 250,
            "currency": "EUR",
            "originalRefId": "bet-123",
        },
    },
}
# The examples are requests the gateway accepts: checked here, once, when the document is built.
for _example in REQUEST_EXAMPLES.values():
    TransactionRequest.model_validate(_example["value"])


def transaction_example(status: str, **extra: Any) -> dict[str, Any]:
    final = status in ("COMPLETED", "REJECTED", "FAILED")
    return {
        "transactionId": "0b7d3c1e-52f4-4d0e-9a53-7f0f8e2a4c11",
        **{k: v for k, v in _BET.items() if k not in ("metadata", "roundClosed")},
        "status": status,
        "reason": None,
        "errorCode": None,
        "balanceCents": 9750 if status == "COMPLETED" else None,
        "operatorTransactionId": "op-88412" if status == "COMPLETED" else None,
        "createdAt": "2024-01-15T10:00:00.120000Z",
        "updatedAt": "2024-01-15T10:00:00.480000Z",
        "completedAt": "2024-01-15T10:00:00.480000Z" if final else None,
        **extra,
    }


def error_example(code: ErrorCode, *, retryable: bool | None = None) -> dict[str, Any]:
    retry, meaning = ERROR_CATALOGUE[code]
    error: dict[str, Any] = {
        "code": code.value,
        "message": meaning,
        "retryable": retry is Retry.RETRY if retryable is None else retryable,
        "correlationId": "c0ffee00-1234-4f6a-9bcd-0123456789ab",
        "details": [],
    }
    if code is ErrorCode.INSUFFICIENT_FUNDS:
        error["balanceCents"] = 120
    if code is ErrorCode.INVALID_REQUEST:
        error["details"] = [{"field": "amountCents", "message": "Input should be greater than or equal to 0"}]
    return {"error": error}


WEBHOOK_EXAMPLE = {
    "eventId": "5f0c8a52-3b7e-4a51-8d0e-2c9f1b6a7d34",
    "eventType": "transaction.completed",
    "occurredAt": "2024-01-15T10:00:00.480000Z",
    "data": transaction_example("COMPLETED"),
}
