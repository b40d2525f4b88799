"""`GET /openapi.json`: the OpenAPI 3.1 document, built from the same pydantic models that validate and answer."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from hub_common.schemas import Balance, ErrorBody, Transaction, TransactionRequest

_REF = "#/components/schemas/{model}"

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (TransactionRequest, "validation"),
    (Transaction, "serialization"),
    (ErrorBody, "serialization"),
    (Balance, "serialization"),
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(model)}},
    }
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    headers = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}} if retry_after else None
    return _json(ErrorBody, description, headers)


def _header(name: str, description: str, *, required: bool, max_length: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if max_length:
        schema["maxLength"] = max_length
    return {"name": name, "in": "header", "required": required, "description": description, "schema": schema}


_SIGNED = [
    _header("X-Client-Id", "RGS client id; selects its secrets", required=True),
    _header("X-Timestamp", "unix seconds; at most 300 s from the Hub's clock", required=True),
    _header(
        "X-Signature",
        "sha256= + hex HMAC-SHA256(secret, '{timestamp}.{METHOD}.{path_with_query}.{raw_body}')",
        required=True,
    ),
    _header("X-Correlation-ID", "optional; generated when absent and echoed", required=False, max_length=128),
]
_AUTH_ERRORS = {"401": _error("INVALID_SIGNATURE, UNKNOWN_CLIENT or STALE_TIMESTAMP")}
_REPLAYED = {"Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}}


def _paths() -> dict[str, Any]:
    post = {
        "operationId": "createTransaction",
        "summary": "Admit a BET, WIN or REFUND and wait (bounded) for its outcome",
        "parameters": [
            *_SIGNED,
            _header("Idempotency-Key", "1-255 printable characters, scoped per client", required=True, max_length=255),
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": _ref(TransactionRequest)}}},
        "responses": {
            "201": _json(Transaction, "COMPLETED within the budget", _REPLAYED),
            "202": _json(
                Transaction,
                "still PENDING/PROCESSING when the budget ran out",
                {**_REPLAYED, "Location": {"schema": {"type": "string"}}},
            ),
            "400": _error("INVALID_REQUEST, with per-field details"),
            **_AUTH_ERRORS,
            "404": _error("PLAYER_NOT_FOUND"),
            "409": _error("IDEMPOTENCY_KEY_REUSED, DUPLICATE_REF_ID or REQUEST_IN_PROGRESS", retry_after=True),
            "413": _error("INVALID_REQUEST: body too large"),
            "422": _error("UNSUPPORTED_CURRENCY, CURRENCY_MISMATCH, INSUFFICIENT_FUNDS or a refund/win rule"),
            "429": _error("RATE_LIMITED: admission backlog over its bound", retry_after=True),
            "502": _error("OPERATOR_UNAVAILABLE: the transaction FAILED"),
            "503": _error("SERVICE_UNAVAILABLE: nothing was accepted", retry_after=True),
        },
    }
    ref_param = {"name": "refId", "in": "path", "required": True, "schema": {"type": "string"}}
    get = {
        "operationId": "getTransaction",
        "parameters": [ref_param, *_SIGNED],
        "responses": {
            "200": _json(Transaction, "the transaction"),
            **_AUTH_ERRORS,
            "404": _error("TRANSACTION_NOT_FOUND"),
        },
    }
    player_param = {"name": "playerId", "in": "path", "required": True, "schema": {"type": "string"}}
    balance = {
        "operationId": "getBalance",
        "summary": "The player's wallet balance (an operator call: it spends the shared operator budget)",
        "parameters": [player_param, *_SIGNED],
        "responses": {
            "200": _json(Balance, "balance"),
            **_AUTH_ERRORS,
            "404": _error("PLAYER_NOT_FOUND"),
            "429": _error("RATE_LIMITED: operator budget spent", retry_after=True),
            "502": _error("OPERATOR_UNAVAILABLE"),
        },
    }
    return {
        "/v1/transactions": {"post": post},
        "/v1/transactions/{refId}": {"get": get},
        "/v1/players/{playerId}/balance": {"get": balance},
    }


def build_document() -> dict[str, Any]:
    _, schemas = models_json_schema(_MODELS, by_alias=True, ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Integration Hub gateway", "version": "1.0.0"},
        "paths": _paths(),
        "components": {"schemas": schemas.get("$defs", {})},
    }


class OpenApi:
    """Serves the document; rendered once, it only changes with the code."""

    def __init__(self) -> None:
        self._body = orjson.dumps(build_document())

    async def handle(self, _: web.Request) -> web.Response:
        return web.Response(body=self._body, content_type="application/json")
