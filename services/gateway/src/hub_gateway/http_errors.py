"""The one place where domain errors and transaction outcomes become HTTP responses (contract section 1)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web

from hub_common.errors import HubError, InfrastructureError, SignatureError
from hub_common.operator import BudgetTimeout, OperatorRateLimited, OperatorRejected, OperatorTechnicalError
from hub_common.schemas import ErrorBody, ErrorCode, ErrorDetail, ErrorInfo, TxStatus
from hub_gateway.errors import (
    DuplicateRefIdError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    RateLimitedError,
    RequestInProgressError,
    TransactionNotFoundError,
    UnsupportedCurrencyError,
)
from hub_gateway.service import Outcome

REPLAYED_HEADER = "Idempotent-Replayed"
# On a 202: seconds (one decimal) until the transaction is expected to reach the operator.
PREDICTED_WAIT_HEADER = "X-Predicted-Wait"


@dataclass(frozen=True)
class Problem:
    status: int
    code: ErrorCode
    message: str
    retryable: bool = False
    details: list[ErrorDetail] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    balance_cents: int | None = None


def _retry_after(seconds: int) -> dict[str, str]:
    return {"Retry-After": str(seconds)}


def problem_for(exc: HubError) -> Problem:
    for classify in (_request_problem, _conflict_problem, _operator_problem):
        problem = classify(exc)
        if problem is not None:
            return problem
    if isinstance(exc, InfrastructureError):
        # The cause stays in the logs; the caller only learns that nothing was accepted.
        message = "a dependency of the Hub is unavailable; nothing was accepted, retry later"
        return Problem(503, ErrorCode.SERVICE_UNAVAILABLE, message, True, headers=_retry_after(1))
    return internal_problem()


def _request_problem(exc: HubError) -> Problem | None:
    """What is wrong with the request itself: 400, 401, 422."""
    if isinstance(exc, SignatureError):
        return Problem(401, ErrorCode(exc.code), exc.message)
    if isinstance(exc, InvalidRequestError):
        details = [ErrorDetail(field=p.field, message=p.message) for p in exc.problems]
        return Problem(400, ErrorCode.INVALID_REQUEST, exc.message, details=details)
    if isinstance(exc, UnsupportedCurrencyError):
        detail = ErrorDetail(field="currency", message=exc.message)
        return Problem(422, ErrorCode.UNSUPPORTED_CURRENCY, exc.message, details=[detail])
    return None


def _conflict_problem(exc: HubError) -> Problem | None:
    """Idempotency, admission control and lookups: 404, 409, 429."""
    if isinstance(exc, IdempotencyKeyReusedError):
        return Problem(409, ErrorCode.IDEMPOTENCY_KEY_REUSED, exc.message)
    if isinstance(exc, DuplicateRefIdError):
        return Problem(409, ErrorCode.DUPLICATE_REF_ID, exc.message)
    if isinstance(exc, RequestInProgressError):
        headers = _retry_after(exc.retry_after_s)
        return Problem(409, ErrorCode.REQUEST_IN_PROGRESS, exc.message, True, headers=headers)
    if isinstance(exc, RateLimitedError):
        return Problem(429, ErrorCode.RATE_LIMITED, exc.message, True, headers=_retry_after(exc.retry_after_s))
    if isinstance(exc, TransactionNotFoundError):
        return Problem(404, ErrorCode.TRANSACTION_NOT_FOUND, exc.message)
    return None


def _operator_problem(exc: HubError) -> Problem | None:
    """Answers of the operator's wallet (balance endpoint)."""
    if isinstance(exc, OperatorRejected):
        status = 404 if exc.code is ErrorCode.PLAYER_NOT_FOUND else 422
        return Problem(status, exc.code, exc.message, balance_cents=exc.balance_cents)
    if isinstance(exc, OperatorRateLimited | BudgetTimeout):
        wait = exc.retry_after_s if isinstance(exc, OperatorRateLimited) else 1.0
        message = "the operator's rate limit is spent; retry later"
        return Problem(429, ErrorCode.RATE_LIMITED, message, True, headers=_retry_after(math.ceil(wait)))
    if isinstance(exc, OperatorTechnicalError):
        return Problem(502, ErrorCode.OPERATOR_UNAVAILABLE, "the operator is unavailable; retry later", True)
    return None


def internal_problem() -> Problem:
    return Problem(500, ErrorCode.INTERNAL_ERROR, "internal error", retryable=True)


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers, content_type="application/json")


def problem_response(
    problem: Problem, correlation_id: str, extra_headers: dict[str, str] | None = None
) -> web.Response:
    info = ErrorInfo(
        code=problem.code,
        message=problem.message,
        retryable=problem.retryable,
        correlation_id=correlation_id,
        details=problem.details,
        balance_cents=problem.balance_cents,
    )
    # exclude_none: balanceCents only appears on INSUFFICIENT_FUNDS, as the contract shows.
    body = ErrorBody(error=info).model_dump(mode="json", by_alias=True, exclude_none=True)
    return json_response(body, problem.status, {**problem.headers, **(extra_headers or {})})


def error_response(exc: HubError, correlation_id: str) -> web.Response:
    return problem_response(problem_for(exc), correlation_id)


def location(ref_id: str) -> str:
    return f"/v1/transactions/{quote(ref_id, safe='')}"


def _rejection(outcome: Outcome) -> Problem:
    tx = outcome.transaction
    code = outcome.error_code or ErrorCode.INTERNAL_ERROR
    message = tx.reason or f"transaction rejected: {code.value}"
    status = 404 if code is ErrorCode.PLAYER_NOT_FOUND else 422
    balance = tx.balance_cents if code is ErrorCode.INSUFFICIENT_FUNDS else None
    return Problem(status, code, message, balance_cents=balance)


def outcome_response(outcome: Outcome, correlation_id: str) -> web.Response:
    """COMPLETED 201, PENDING/PROCESSING 202 + Location, REJECTED 404/422, FAILED 502 (architecture.md)."""
    tx = outcome.transaction
    headers = {REPLAYED_HEADER: "true"} if outcome.replayed else {}
    if tx.status is TxStatus.COMPLETED:
        return json_response(tx.to_wire(), 201, headers)
    if tx.status is TxStatus.REJECTED:
        return problem_response(_rejection(outcome), correlation_id, headers)
    if tx.status is TxStatus.FAILED:
        message = tx.reason or "the operator was unavailable; the transaction failed"
        return problem_response(Problem(502, ErrorCode.OPERATOR_UNAVAILABLE, message), correlation_id, headers)
    wait_s = round(outcome.predicted_wait_s or 0.0, 1)
    # AcceptedTransaction's wire form, without validating the transaction a second time.
    body = {**tx.to_wire(), "predictedWaitS": wait_s}
    # Retry-After: when polling first makes sense (RFC 9110 lets a server say so on any answer).
    accepted = {"Location": location(tx.ref_id), PREDICTED_WAIT_HEADER: f"{wait_s:.1f}", **_retry_after(_ceil(wait_s))}
    return json_response(body, 202, {**headers, **accepted})


def _ceil(seconds: float) -> int:
    return max(1, math.ceil(seconds))
