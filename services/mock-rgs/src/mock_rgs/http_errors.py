"""The one place that turns the mock RGS's errors into HTTP answers: `{"error": {code, message, ...}}`."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import ValidationError

from hub_client import WebhookVerificationError


def error_response(
    status: int, code: str, message: str, *, details: list[dict[str, Any]] | None = None
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details:
        error["details"] = details
    return web.json_response({"error": error}, status=status)


def signature_error(exc: WebhookVerificationError) -> web.Response:
    return error_response(401, exc.code, exc.message)


def behaviour_error(status: int) -> web.Response:
    return error_response(status, "CONFIGURED_FAILURE", "answer set by the mock RGS behaviour")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return error_response(400, "INVALID_REQUEST", "request body does not match the schema", details=details)
