"""The served OpenAPI document against the contract's section 1 (its table, encoded here as expected data)."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from hub_common.schemas import ErrorCode
from hub_gateway.openapi import build_document

SIGNED = {"X-Client-Id", "X-Timestamp", "X-Signature", "X-Correlation-ID"}
AUTH_CODES = {"INVALID_SIGNATURE", "UNKNOWN_CLIENT", "STALE_TIMESTAMP"}

# (method, path) -> status -> the error codes the contract gives that status (empty: a success).
CONTRACT: dict[tuple[str, str], dict[str, set[str]]] = {
    ("post", "/v1/transactions"): {
        "201": set(),
        "202": set(),
        "400": {"INVALID_REQUEST"},
        "401": AUTH_CODES,
        "404": {"PLAYER_NOT_FOUND"},
        "409": {"IDEMPOTENCY_KEY_REUSED", "DUPLICATE_REF_ID", "REQUEST_IN_PROGRESS"},
        "422": {
            "UNSUPPORTED_CURRENCY",
            "CURRENCY_MISMATCH",
            "INSUFFICIENT_FUNDS",
            "BET_NOT_FOUND",
            "BET_ALREADY_SETTLED",
            "BET_ALREADY_REFUNDED",
            "AMOUNT_MISMATCH",
            "BET_EXPIRED",
        },
        "429": {"RATE_LIMITED"},
        "502": {"OPERATOR_UNAVAILABLE"},
        "503": {"SERVICE_UNAVAILABLE"},
    },
    ("get", "/v1/transactions/{refId}"): {"200": set(), "401": AUTH_CODES, "404": {"TRANSACTION_NOT_FOUND"}},
    ("get", "/v1/players/{playerId}/balance"): {"200": set(), "401": AUTH_CODES},
}
REQUEST_HEADERS = {
    ("post", "/v1/transactions"): SIGNED | {"Idempotency-Key"},
    ("get", "/v1/transactions/{refId}"): SIGNED,
    ("get", "/v1/players/{playerId}/balance"): SIGNED,
}
# Response headers the contract names, per (POST) status.
POST_RESPONSE_HEADERS = {
    "201": {"Idempotent-Replayed"},
    "202": {"Idempotent-Replayed", "Location", "X-Predicted-Wait", "Retry-After"},
    "409": {"Retry-After"},
    "429": {"Retry-After"},
    "503": {"Retry-After"},
}


def _operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = document["paths"][path][method]
    return operation


def test_every_contract_path_is_documented_and_nothing_else() -> None:
    paths = build_document()["paths"]
    assert {(m, p) for p, ops in paths.items() for m in ops} == set(CONTRACT)


@pytest.mark.parametrize(("method", "path"), list(CONTRACT))
def test_statuses_and_error_codes(method: str, path: str) -> None:
    responses = _operation(build_document(), method, path)["responses"]
    for status, codes in CONTRACT[(method, path)].items():
        assert status in responses, f"{method} {path} lacks {status}"
        documented = set(responses[status].get("x-error-codes", []))
        assert codes <= documented, f"{method} {path} {status}: {codes - documented} missing"
        assert bool(codes) == (responses[status]["content"]["application/json"]["schema"]["$ref"].endswith("Body"))
    # No 5xx is documented that the contract does not know, and never a 500.
    assert "500" not in responses
    assert "413" not in responses


def test_every_error_code_of_the_contract_is_documented() -> None:
    documented = {
        code
        for ops in build_document()["paths"].values()
        for operation in ops.values()
        for response in operation["responses"].values()
        for code in response.get("x-error-codes", [])
    }
    assert documented == {c.value for c in ErrorCode} - {"INTERNAL_ERROR"}


@pytest.mark.parametrize(("method", "path"), list(CONTRACT))
def test_request_headers(method: str, path: str) -> None:
    document = build_document()
    operation = _operation(document, method, path)
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    # The signing headers are the operation's security requirement: all three schemes together.
    schemes = document["components"]["securitySchemes"]
    (requirement,) = operation["security"]
    signed = {schemes[name]["name"] for name in requirement}
    assert all(schemes[name]["in"] == "header" for name in requirement)
    assert set(headers) | signed == REQUEST_HEADERS[(method, path)]
    assert signed == SIGNED - {"X-Correlation-ID"}
    assert headers["X-Correlation-ID"]["required"] is False
    assert all(h["required"] for name, h in headers.items() if name != "X-Correlation-ID")


@pytest.mark.parametrize(("method", "path"), list(CONTRACT))
def test_every_response_carries_the_correlation_id(method: str, path: str) -> None:
    for response in _operation(build_document(), method, path)["responses"].values():
        assert response["headers"]["X-Correlation-ID"]["required"] is True


def test_post_response_headers() -> None:
    responses = _operation(build_document(), "post", "/v1/transactions")["responses"]
    for status, names in POST_RESPONSE_HEADERS.items():
        assert names <= set(responses[status]["headers"]), status
    assert responses["202"]["headers"]["Location"]["required"] is True
    assert responses["429"]["headers"]["Retry-After"]["required"] is True
    assert responses["202"]["headers"]["X-Predicted-Wait"]["required"] is True


def test_bodies_are_the_handlers_models() -> None:
    document = build_document()
    post = _operation(document, "post", "/v1/transactions")
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/TransactionRequest")
    transaction = document["components"]["schemas"]["Transaction"]
    assert set(transaction["properties"]) == {
        "transactionId", "refId", "type", "playerId", "amountCents", "currency", "roundId", "gameId",
        "originalRefId", "status", "reason", "errorCode", "balanceCents", "operatorTransactionId", "createdAt",
        "updatedAt", "completedAt",
    }  # fmt: skip
    accepted = document["components"]["schemas"]["AcceptedTransaction"]
    assert set(accepted["properties"]) == set(transaction["properties"]) | {"predictedWaitS"}
    assert post["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/AcceptedTransaction")
    error = document["components"]["schemas"]["ErrorInfo"]
    assert {"code", "message", "retryable", "correlationId", "details"} <= set(error["properties"])


async def test_the_served_document_is_the_built_one(session: aiohttp.ClientSession, base_url: str) -> None:
    async with session.get(base_url + "/openapi.json") as response:
        assert response.status == 200
        assert await response.json() == build_document()
