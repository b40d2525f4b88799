"""`GET /openapi.json`: the OpenAPI 3.1 document, built from the same pydantic models that validate and answer.

Header names come from the modules that read or write them, so the document cannot drift from the code; the
error catalogue, signature scheme and examples are in `openapi_catalogue`. The contract is docs/contract.md.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from hub_common.schemas import (
    AcceptedTransaction,
    Balance,
    ErrorBody,
    ErrorCode,
    Transaction,
    TransactionRequest,
    WebhookBody,
)
from hub_common.telemetry import CORRELATION_HEADER
from hub_gateway.http_errors import PREDICTED_WAIT_HEADER, REPLAYED_HEADER
from hub_gateway.openapi_catalogue import (
    ERROR_CATALOGUE,
    REQUEST_EXAMPLES,
    SIGNED,
    error_code_schema,
    error_example,
    security_schemes,
    transaction_example,
)
from hub_gateway.openapi_webhooks import webhooks
from hub_gateway.validation import IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_PATTERN

_REF = "#/components/schemas/{model}"

_MODELS: list[tuple[type[BaseModel], JsonSchemaMode]] = [
    (TransactionRequest, "validation"),
    (Transaction, "serialization"),
    (AcceptedTransaction, "serialization"),
    (ErrorBody, "serialization"),
    (Balance, "serialization"),
    (WebhookBody, "serialization"),
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
_PREDICTED = {
    PREDICTED_WAIT_HEADER: _response_header(
        "seconds (one decimal) until the transaction is expected to reach the operator (as `predictedWaitS`)",
        {"type": "string", "pattern": "^[0-9]+\\.[0-9]$"},
        required=True,
    ),
    "Retry-After": _response_header(
        "whole seconds (at least 1) before a poll of `Location` can show a final status", _SECONDS, required=True
    ),
}


def _json(
    model: type[BaseModel],
    description: str,
    headers: dict[str, Any] | None = None,
    examples: dict[str, Any] | None = None,
) -> dict[str, Any]:
    content: dict[str, Any] = {"schema": _ref(model)}
    if examples:
        content["examples"] = {name: {"value": value} for name, value in examples.items()}
    return {
        "description": description,
        "headers": {**_CORRELATION, **(headers or {})},
        "content": {"application/json": content},
    }


def _error(
    codes: list[ErrorCode],
    description: str,
    headers: dict[str, Any] | None = None,
    *,
    retryable: bool | None = None,
) -> dict[str, Any]:
    # `x-error-codes`: the `error.code` values this status carries, machine-readable for clients and tests;
    # each code's retry class is in the ErrorCode schema (`x-retry`) and in the description.
    names = [code.value for code in codes]
    classes = ", ".join(f"{code.value} ({ERROR_CATALOGUE[code][0].value})" for code in codes)
    examples = {code.value: error_example(code, retryable=retryable) for code in codes}
    return {**_json(ErrorBody, f"{classes}: {description}", headers, examples), "x-error-codes": names}


def _header(
    name: str, description: str, *, required: bool, max_length: int | None = None, pattern: str | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if max_length:
        schema["maxLength"] = max_length
    if pattern:
        schema["pattern"] = pattern
    return {"name": name, "in": "header", "required": required, "description": description, "schema": schema}


_CORRELATION_PARAM = _header(
    CORRELATION_HEADER, "optional; generated when absent, echoed, carried to webhooks", required=False, max_length=128
)
_AUTH_ERRORS = {
    "400": _error([ErrorCode.INVALID_REQUEST], "the body is over the size limit"),
    "401": _error(
        [ErrorCode.INVALID_SIGNATURE, ErrorCode.UNKNOWN_CLIENT, ErrorCode.STALE_TIMESTAMP], "authentication failed"
    ),
}


_INFO = """The RGS API of Integration Hub (its contract: docs/contract.md in the repository; a guide:
docs/integrating.md). Every `/v1` request is signed (security scheme `signature`). A POST carries an
`Idempotency-Key`; sending the same request again with the same key is always safe and answers with the
original outcome (`Idempotent-Replayed: true`). A POST answers with the outcome (201, 404, 422, 502) or, when
the ledger has not finished within the budget, 202 + `Location`: poll it, or wait for the result webhook
(`webhooks`). Each error code has a retry class (`x-retry` in `ErrorCode`): `fix` the request, `final`
outcome, or `retry` the same request with the same key after `Retry-After`."""

_ACCEPTED = (
    "Admitted, still PENDING/PROCESSING: the outcome did not arrive within the outcome budget, or (answered at "
    "once) it was not expected to: the predicted wait (`predictedWaitS`, header X-Predicted-Wait) exceeded the "
    "budget. It will finish on its own: poll `Location` (GET, signed; not before Retry-After) until the status is "
    "final, or wait for its webhook. Re-sending the POST with the same key also answers with the outcome once "
    "there is one. A BET not sent within its useful life ends REJECTED `BET_EXPIRED` (nothing debited)."
)


def _post_transaction() -> dict[str, Any]:
    return {
        "operationId": "createTransaction",
        "summary": "Admit a BET, WIN or REFUND and wait (bounded) for its outcome",
        "security": SIGNED,
        "parameters": [
            _CORRELATION_PARAM,
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
            "content": {"application/json": {"schema": _ref(TransactionRequest), "examples": REQUEST_EXAMPLES}},
        },
        "responses": {
            "201": _json(
                Transaction, "COMPLETED within the budget", _REPLAYED, {"completed": transaction_example("COMPLETED")}
            ),
            "202": {
                **_json(
                    AcceptedTransaction,
                    _ACCEPTED,
                    {**_REPLAYED, **_LOCATION, **_PREDICTED},
                    {
                        "pending": transaction_example("PENDING", predictedWaitS=42.5),
                        "processing": transaction_example("PROCESSING", predictedWaitS=0.0),
                    },
                ),
                "links": {
                    "followLocation": {
                        "operationId": "getTransaction",
                        "parameters": {"refId": "$response.body#/refId"},
                        "description": "Poll until status is COMPLETED, REJECTED or FAILED (or wait for the webhook)",
                    }
                },
            },
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
                    ErrorCode.BET_EXPIRED,
                ],
                "rejected (INSUFFICIENT_FUNDS carries balanceCents)",
                _REPLAYED,
            ),
            "429": _error(
                [ErrorCode.RATE_LIMITED],
                "a BET would wait longer than its useful life for the operator, or this client already holds its "
                "share of the BETs that fit in it (never for a WIN or REFUND); Retry-After: when a BET is expected "
                "to be admitted again",
                _RETRY_AFTER,
            ),
            "502": _error([ErrorCode.OPERATOR_UNAVAILABLE], "the transaction FAILED (a BET was cancelled)", _REPLAYED),
            "503": _error(
                [ErrorCode.SERVICE_UNAVAILABLE], "Kafka or PostgreSQL unreachable: nothing accepted", _RETRY_AFTER
            ),
        },
    }


def _path_id(name: str, example: str) -> dict[str, Any]:
    """A path parameter held to the rule of the body field of that name (400 INVALID_REQUEST otherwise)."""
    schema = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[\x21-\x7e]+$"}
    return {"name": name, "in": "path", "required": True, "schema": schema, "example": example}


_PATH_ERRORS = {
    **_AUTH_ERRORS,
    "400": _error([ErrorCode.INVALID_REQUEST], "the path's id breaks its field's rule (1-128 printable, no spaces)"),
}


def _get_transaction() -> dict[str, Any]:
    ref_param = _path_id("refId", "bet-123")
    return {
        "operationId": "getTransaction",
        "summary": "The transaction's current state",
        "security": SIGNED,
        "parameters": [ref_param, _CORRELATION_PARAM],
        "responses": {
            "200": _json(
                Transaction,
                "the transaction, in whatever state it is (a REJECTED one carries `reason`)",
                examples={"completed": transaction_example("COMPLETED"), "pending": transaction_example("PENDING")},
            ),
            **_PATH_ERRORS,
            "404": _error([ErrorCode.TRANSACTION_NOT_FOUND], "no such transaction of this client"),
            "503": _error([ErrorCode.SERVICE_UNAVAILABLE], "PostgreSQL unreachable", _RETRY_AFTER),
        },
    }


def _get_balance() -> dict[str, Any]:
    player_param = _path_id("playerId", "p-1")
    return {
        "operationId": "getBalance",
        "summary": "The player's wallet balance (an operator call: it spends the shared operator budget)",
        "security": SIGNED,
        "parameters": [player_param, _CORRELATION_PARAM],
        "responses": {
            "200": _json(
                Balance, "balance", examples={"balance": {"playerId": "p-1", "balanceCents": 9750, "currency": "EUR"}}
            ),
            **_PATH_ERRORS,
            "404": _error([ErrorCode.PLAYER_NOT_FOUND], "the operator does not know the player"),
            "429": _error(
                [ErrorCode.RATE_LIMITED],
                "this client's share of the operator budget for balance reads is spent, or no call is possible in "
                "time; Retry-After: when one is",
                _RETRY_AFTER,
            ),
            "502": _error([ErrorCode.OPERATOR_UNAVAILABLE], "the operator did not answer; retry", retryable=True),
        },
    }


def build_document() -> dict[str, Any]:
    _, schemas = models_json_schema(_MODELS, by_alias=True, ref_template=_REF)
    components = {**schemas.get("$defs", {}), "ErrorCode": error_code_schema()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Integration Hub gateway", "version": "1.0.0", "description": _INFO},
        "paths": {
            "/v1/transactions": {"post": _post_transaction()},
            "/v1/transactions/{refId}": {"get": _get_transaction()},
            "/v1/players/{playerId}/balance": {"get": _get_balance()},
        },
        "webhooks": webhooks(_ref(WebhookBody)),
        "components": {"schemas": components, "securitySchemes": security_schemes()},
    }


class OpenApi:
    """Serves the document; rendered once, it only changes with the code."""

    def __init__(self) -> None:
        self._body = orjson.dumps(build_document())

    async def handle(self, _: web.Request) -> web.Response:
        return web.Response(body=self._body, content_type="application/json")
