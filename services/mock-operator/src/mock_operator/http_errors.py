"""The one place that turns the mock operator's errors into HTTP answers: `{"error": {code, message, ...}}`."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from hub_common.errors import SignatureError
from mock_operator.errors import (
    CurrencyMismatchError,
    InsufficientFundsError,
    InvalidRequestError,
    PlayerNotFoundError,
    TransactionConflictError,
    TransactionNotFoundError,
    WalletError,
)
from mock_operator.ratelimit import retry_after_header

_STATUS: dict[type[WalletError], int] = {
    PlayerNotFoundError: 404,
    TransactionNotFoundError: 404,
    InsufficientFundsError: 422,
    CurrencyMismatchError: 422,
    TransactionConflictError: 409,
    InvalidRequestError: 400,
}


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    balance_cents: int | None = None,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if balance_cents is not None:
        error["balanceCents"] = balance_cents
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=status, headers=headers)


def wallet_error(exc: WalletError) -> web.Response:
    balance = exc.balance_cents if isinstance(exc, InsufficientFundsError) else None
    return error_response(_STATUS.get(type(exc), 422), exc.code, exc.message, balance_cents=balance)


def signature_error(exc: SignatureError) -> web.Response:
    return error_response(401, exc.code, exc.message)


def validation_error(exc: ValidationError) -> web.Response:
    details = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
    return error_response(400, "INVALID_REQUEST", "request body does not match the schema", details=details)


def rate_limited(retry_after_s: float) -> web.Response:
    header = retry_after_header(retry_after_s)
    return error_response(
        429, "RATE_LIMITED", f"rate limit exceeded; retry after {header} s", headers={"Retry-After": header}
    )


def injected_error(status: int) -> web.Response:
    return error_response(status, "INJECTED_FAULT", "fault injected by the mock operator")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Handlers raise domain and validation errors; they become answers here and nowhere else."""
    try:
        return await handler(request)
    except WalletError as exc:
        return wallet_error(exc)
    except ValidationError as exc:
        return validation_error(exc)
