"""The OpenAPI document as an integrator reads it: valid 3.1, signing declared and true, every error code with
its retry class (as docs/contract.md section 1.7 gives it), examples that the models accept, the webhook."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel, SecretStr

from hub_common.errors import HubError, KafkaUnavailableError, SignatureError
from hub_common.schemas import (
    AcceptedTransaction,
    Balance,
    ErrorBody,
    ErrorCode,
    Transaction,
    TransactionRequest,
    TxStatus,
    WebhookBody,
)
from hub_common.signing import WebhookSigner, sign_request
from hub_gateway.errors import (
    DuplicateRefIdError,
    IdempotencyKeyReusedError,
    InvalidRequestError,
    RateLimitedError,
    RequestInProgressError,
    TransactionNotFoundError,
    UnsupportedCurrencyError,
)
from hub_gateway.http_errors import outcome_response, problem_for
from hub_gateway.openapi import build_document
from hub_gateway.service import Outcome
from hub_gateway.settings import GatewaySettings
from support.gateway_fakes import transaction_for

CONTRACT = Path(__file__).parents[3] / "docs" / "contract.md"


def contract_error_table() -> dict[str, tuple[int, str]]:
    """Section 1.7's rows: code -> (HTTP status, retry class)."""
    section = CONTRACT.read_text().split("### 1.7 Error codes", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (\d{3}) \| (fix|final|retry) \|", section, flags=re.MULTILINE)
    return {code: (int(status), retry) for code, status, retry in rows}


def test_the_document_is_valid_openapi_3_1() -> None:
    document = build_document()
    assert document["openapi"].startswith("3.1")
    errors = [str(e.message) for e in OpenAPIV31SpecValidator(document).iter_errors()]
    assert errors == []


def test_the_signature_scheme_describes_what_the_gateway_verifies() -> None:
    schemes = build_document()["components"]["securitySchemes"]
    hmac_spec = schemes["signature"]["x-hmac"]
    assert hmac_spec["clockToleranceSeconds"] == GatewaySettings().signature_tolerance_s
    # Follow the recipe literally; the gateway's own signer must produce the same header value.
    body = b'{"refId":"bet-1"}'
    message = (
        hmac_spec["signedString"]
        .replace("{X-Timestamp}", "1700000000")
        .replace("{METHOD}", "POST")
        .replace("{path_with_query}", "/v1/transactions?x=1")
        .replace("{raw_body}", body.decode())
    )
    digest = hmac.new(b"s3cret", message.encode(), hashlib.sha256).hexdigest()
    expected = sign_request(SecretStr("s3cret"), "1700000000", "POST", "/v1/transactions?x=1", body)
    assert hmac_spec["prefix"] + digest == expected
    assert {s["name"] for s in schemes.values()} == {"X-Client-Id", "X-Timestamp", "X-Signature"}


def test_every_error_code_has_the_retry_class_of_the_contract() -> None:
    documented = {
        entry["const"]: entry["x-retry"] for entry in build_document()["components"]["schemas"]["ErrorCode"]["oneOf"]
    }
    table = contract_error_table()
    assert set(table) == {c.value for c in ErrorCode}, "docs/contract.md 1.7 lists every code once"
    assert documented == {code: retry for code, (_, retry) in table.items()}


def test_error_statuses_agree_with_the_contract_table() -> None:
    table = contract_error_table()
    for path_item in build_document()["paths"].values():
        for operation in path_item.values():
            for status, response in operation["responses"].items():
                for code in response.get("x-error-codes", []):
                    assert table[code][0] == int(status), (code, status)


_DOMAIN_ERRORS: list[HubError] = [
    InvalidRequestError("bad"),
    SignatureError("INVALID_SIGNATURE", "bad"),
    SignatureError("UNKNOWN_CLIENT", "bad"),
    SignatureError("STALE_TIMESTAMP", "bad"),
    UnsupportedCurrencyError("XXX", ["EUR"]),
    IdempotencyKeyReusedError(),
    DuplicateRefIdError("r"),
    TransactionNotFoundError("r"),
    RequestInProgressError(1),
    RateLimitedError("busy", 1, reason="bet_wait"),
    KafkaUnavailableError("down"),
    HubError("unforeseen"),
]


@pytest.mark.parametrize("error", _DOMAIN_ERRORS, ids=lambda e: type(e).__name__)
def test_the_retry_class_is_the_retryable_flag_the_gateway_sends(error: HubError) -> None:
    retry = {e["const"]: e["x-retry"] for e in build_document()["components"]["schemas"]["ErrorCode"]["oneOf"]}
    problem = problem_for(error)
    assert problem.retryable is (retry[problem.code.value] == "retry")


@pytest.mark.parametrize("code", [c for c in ErrorCode if contract_error_table()[c.value][1] == "final"])
def test_final_outcomes_are_not_retryable(code: ErrorCode) -> None:
    request = TransactionRequest.model_validate(
        {"refId": "r", "type": "BET", "playerId": "p", "amountCents": 1, "currency": "EUR"}
    )
    status = TxStatus.FAILED if code is ErrorCode.OPERATOR_UNAVAILABLE else TxStatus.REJECTED
    response = outcome_response(Outcome(transaction_for(request, status), code), "c")
    assert isinstance(response.body, bytes)
    error = orjson.loads(response.body)["error"]
    assert (error["code"], error["retryable"]) == (code.value, False)


def _examples_with_models() -> list[tuple[type[BaseModel], Any]]:
    document = build_document()
    models: dict[str, type[BaseModel]] = {
        m.__name__: m for m in (Transaction, AcceptedTransaction, ErrorBody, Balance, TransactionRequest, WebhookBody)
    }
    pairs = []
    operations = [op for item in document["paths"].values() for op in item.values()]
    operations += [op for item in document["webhooks"].values() for op in item.values()]
    for operation in operations:
        bodies = [operation["requestBody"]] if "requestBody" in operation else []
        bodies += [r for r in operation["responses"].values() if "content" in r]
        for body in bodies:
            content = body["content"]["application/json"]
            model = models[content["schema"]["$ref"].rsplit("/", 1)[1]]
            pairs += [(model, example["value"]) for example in content.get("examples", {}).values()]
    return pairs


def test_every_operation_has_examples_the_models_accept() -> None:
    pairs = _examples_with_models()
    assert {model for model, _ in pairs} == {
        Transaction,
        AcceptedTransaction,
        ErrorBody,
        Balance,
        TransactionRequest,
        WebhookBody,
    }
    for model, value in pairs:
        model.model_validate(value)
    document = build_document()
    for item in document["paths"].values():
        for operation in item.values():
            assert any(
                "examples" in r.get("content", {}).get("application/json", {}) for r in operation["responses"].values()
            )


def test_202_points_at_the_transaction_and_says_how_to_follow_it() -> None:
    accepted = build_document()["paths"]["/v1/transactions"]["post"]["responses"]["202"]
    assert accepted["headers"]["Location"]["required"] is True
    assert accepted["links"]["followLocation"]["operationId"] == "getTransaction"
    assert "webhook" in accepted["description"]


def test_the_webhook_names_the_headers_the_dispatcher_signs_with() -> None:
    (webhook,) = build_document()["webhooks"].values()
    post = webhook["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/WebhookBody")
    documented = {p["name"] for p in post["parameters"]}
    signed = set(WebhookSigner([SecretStr("k")]).headers("e-1", b"{}"))
    assert signed <= documented
    assert {"X-Attempt", "X-Replay", "X-Correlation-ID"} <= documented
