"""`GET /openapi.json`: the OpenAPI 3.1 document, built from the same pydantic models that validate and answer.

Header names come from the modules that read or write them, so the document cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from hub_common.schemas import Balance, ErrorBody, ErrorCode, Transaction, TransactionRequest
from hub_common.telemetry import CORRELATION_HEADER
from hub_gateway.auth import CLIENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from hub_gateway.http_errors import REPLAYED_HEADER
from hub_gateway.validation import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_PATTERN

_REF = "#/components/schemas/{model}"

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (TransactionRequest, "validation"),
    (Transaction, "serialization"),
    (ErrorBody, "serialization"),
    (Balance, "serialization"),
]

_STRING: dict[str, Any] = {"type": "string"}
_SECONDS: dict[str, Any] = {"type": "string", "pattern": "^[0-9]+$"}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _response_header(description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


_CORRELATION = {CORRELATION_HEADER: _response_header("echoed or generated", _STRING, required=True)}
_RETRY_AFTER = {"Retry-After": _response_header("seconds to wait before retrying", _SECONDS, required=True)}
_MAY_RETRY_AFTER = {"Retry-After": _response_header("seconds (REQUEST_IN_PROGRESS only)", _SECONDS)}
_REPLAYED = {REPLAYED_HEADER: _response_header("present on replays", {"type": "string", "enum": ["true"]})}
_LOCATION = {"Location": _response_header("where the transaction's state is read", _STRING, required=True)}


def _json(model: type[BaseModel], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {**_CORRELATION, **(headers or {})},
        "content": {"application/json": {"schema": _ref(model)}},
    }


def _error(codes: list[ErrorCode], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    # `x-error-codes`: the `error.code` values this status carries, machine-readable for clients and tests.
    names = [code.value for code in codes]
    return {**_json(ErrorBody, f"{', '.join(names)}: {description}", headers), "x-error-codes": names}


def _header(
    name: str, description: str, *, required: bool, max_length: int | None = None, pattern: str | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if max_length:
        schema["maxLength"] = max_length
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "header", "required": required, "description": description, "schema": schema}


_SIGNED = [
    _header(CLIENT_HEADER, "RGS client id; selects its secrets", required=True),
    _header(TIMESTAMP_HEADER, "unix seconds; at most 300 s from the Hub's clock", required=True),
    _header(
        SIGNATURE_HEADER,
        "sha256= + hex HMAC-SHA256(secret, '{timestamp}.{METHOD}.{path_with_query}.{raw_body}')",
        required=True,
    ),
    _header(CORRELATION_HEADER, "optional; generated when absent and echoed", required=False, max_length=128),
]
_AUTH_ERRORS = {
    "400": _error([ErrorCode.INVALID_REQUEST], "the body is over the size limit"),
    "401": _error(
        [ErrorCode.INVALID_SIGNATURE, ErrorCode.UNKNOWN_CLIENT, ErrorCode.STALE_TIMESTAMP], "authentication failed"
    ),
}


_REQUEST_EXAMPLES = {
    "bet": {
        "value": {
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
    },
    "refund": {
        "value": {
            "refId": "refund-123",
            "type": "REFUND",
            "playerId": "p-1",
            "amountCents": 250,
            "currency": "EUR",
            "originalRefId": "bet-123",
        }
    },
}


def _post_transaction() -> dict[str, Any]:
    return {
        "operationId": "createTransaction",
        "summary": "Admit a BET, WIN or REFUND and wait (bounded) for its outcome",
        "parameters": [
            *_SIGNED,
            _header(
                IDEMPOTENCY_HEADER,
                "1-255 printable characters, scoped per client",
                required=True,
                max_length=255,
                pattern=IDEMPOTENCY_KEY_PATTERN,
            ),
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _ref(TransactionRequest), "examples": _REQUEST_EXAMPLES}},
        },
        "responses": {
            "201": _json(Transaction, "COMPLETED within the budget", _REPLAYED),
            "202": _json(Transaction, "still PENDING/PROCESSING when the budget ran out", {**_REPLAYED, **_LOCATION}),
            **_AUTH_ERRORS,
            "400": _error(
                [ErrorCode.INVALID_REQUEST], "malformed JSON, missing or wrong fields, bad headers; per-field details"
            ),
            "404": _error([ErrorCode.PLAYER_NOT_FOUND], "the operator does not know the player", _REPLAYED),
            "409": _error(
                [ErrorCode.IDEMPOTENCY_KEY_REUSED, ErrorCode.DUPLICATE_REF_ID, ErrorCode.REQUEST_IN_PROGRESS],
                "conflict",
                _MAY_RETRY_AFTER,
            ),
            "422": _error(
                [
                    ErrorCode.UNSUPPORTED_CURRENCY,
                    ErrorCode.CURRENCY_MISMATCH,
                    ErrorCode.INSUFFICIENT_FUNDS,
                    ErrorCode.BET_NOT_FOUND,
                    ErrorCode.BET_ALREADY_SETTLED,
                    ErrorCode.BET_ALREADY_REFUNDED,
                    ErrorCode.AMOUNT_MISMATCH,
                ],
                "rejected (INSUFFICIENT_FUNDS carries balanceCents)",
                _REPLAYED,
            ),
            "429": _error([ErrorCode.RATE_LIMITED], "admission backlog over its bound", _RETRY_AFTER),
            "502": _error([ErrorCode.OPERATOR_UNAVAILABLE], "the transaction FAILED", _REPLAYED),
            "503": _error(
                [ErrorCode.SERVICE_UNAVAILABLE], "Kafka or PostgreSQL unreachable: nothing accepted", _RETRY_AFTER
            ),
        },
    }


def _get_transaction() -> dict[str, Any]:
    ref_param = {"name": "refId", "in": "path", "required": True, "schema": {"type": "string"}, "example": "bet-123"}
    return {
        "operationId": "getTransaction",
        "summary": "The transaction's current state",
        "parameters": [ref_param, *_SIGNED],
        "responses": {
            "200": _json(Transaction, "the transaction"),
            **_AUTH_ERRORS,
            "404": _error([ErrorCode.TRANSACTION_NOT_FOUND], "no such transaction of this client"),
            "503": _error([ErrorCode.SERVICE_UNAVAILABLE], "PostgreSQL unreachable", _RETRY_AFTER),
        },
    }


def _get_balance() -> dict[str, Any]:
    player_param = {"name": "playerId", "in": "path", "required": True, "schema": {"type": "string"}, "example": "p-1"}
    return {
        "operationId": "getBalance",
        "summary": "The player's wallet balance (an operator call: it spends the shared operator budget)",
        "parameters": [player_param, *_SIGNED],
        "responses": {
            "200": _json(Balance, "balance"),
            **_AUTH_ERRORS,
            "404": _error([ErrorCode.PLAYER_NOT_FOUND], "the operator does not know the player"),
            "429": _error([ErrorCode.RATE_LIMITED], "operator budget spent", _RETRY_AFTER),
            "502": _error([ErrorCode.OPERATOR_UNAVAILABLE], "the operator did not answer"),
        },
    }


def build_document() -> dict[str, Any]:
    _, schemas = models_json_schema(_MODELS, by_alias=True, ref_template=_REF)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Integration Hub gateway", "version": "1.0.0"},
        "paths": {
            "/v1/transactions": {"post": _post_transaction()},
            "/v1/transactions/{refId}": {"get": _get_transaction()},
            "/v1/players/{playerId}/balance": {"get": _get_balance()},
        },
        "components": {"schemas": schemas.get("$defs", {})},
    }


class OpenApi:
    """Serves the document; rendered once, it only changes with the code."""

    def __init__(self) -> None:
        self._body = orjson.dumps(build_document())

    async def handle(self, _: web.Request) -> web.Response:
        return web.Response(body=self._body, content_type="application/json")
