"""The one mapping from domain errors and transaction outcomes to HTTP (contract section 1)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import pytest
from aiohttp import web

from hub_common.errors import DatabaseUnavailableError, HubError, KafkaUnavailableError
from hub_common.operator import BudgetTimeout, OperatorRateLimited, OperatorRejected, OperatorTechnicalError
from hub_common.schemas import AcceptedTransaction, ErrorCode, TransactionRequest, TxStatus
from hub_gateway import http_errors
from hub_gateway.client import GatewayClient
from hub_gateway.errors import (
    DuplicateRefIdError,
    IdempotencyKeyReusedError,
    RateLimitedError,
    RequestInProgressError,
)
from hub_gateway.service import Outcome
from support.gateway_fakes import FakeTransactions, transaction_for

REQUEST = TransactionRequest.model_validate(
    {"refId": "bet/1", "type": "BET", "playerId": "p-1", "amountCents": 250, "currency": "EUR"}
)
BET: dict[str, Any] = REQUEST.model_dump(mode="json", by_alias=True)


def _body(response: web.Response) -> Any:
    assert isinstance(response.body, bytes)
    return orjson.loads(response.body)


@pytest.mark.parametrize(
    ("error", "status", "code", "retryable", "retry_after"),
    [
        (IdempotencyKeyReusedError(), 409, "IDEMPOTENCY_KEY_REUSED", False, None),
        (DuplicateRefIdError("bet-1"), 409, "DUPLICATE_REF_ID", False, None),
        (RequestInProgressError(2), 409, "REQUEST_IN_PROGRESS", True, "2"),
        (RateLimitedError("busy", 5, reason="bet_wait"), 429, "RATE_LIMITED", True, "5"),
        (KafkaUnavailableError("broker down"), 503, "SERVICE_UNAVAILABLE", True, "1"),
        (DatabaseUnavailableError("db down"), 503, "SERVICE_UNAVAILABLE", True, "1"),
        (OperatorRejected(ErrorCode.PLAYER_NOT_FOUND, "no such player"), 404, "PLAYER_NOT_FOUND", False, None),
        (OperatorRateLimited(2.5), 429, "RATE_LIMITED", True, "3"),
        (BudgetTimeout("no budget"), 429, "RATE_LIMITED", True, "1"),
        (OperatorTechnicalError("503", outcome_unknown=False), 502, "OPERATOR_UNAVAILABLE", True, None),
        (HubError("something unforeseen"), 500, "INTERNAL_ERROR", True, None),
    ],
)
def test_error_mapping(error: HubError, status: int, code: str, retryable: bool, retry_after: str | None) -> None:
    response = http_errors.error_response(error, "corr-1")
    assert response.status == status
    assert response.headers.get("Retry-After") == retry_after
    assert _body(response) == {
        "error": {
            "code": code,
            "message": _body(response)["error"]["message"],
            "retryable": retryable,
            "correlationId": "corr-1",
            "details": [],
        }
    }


def test_infrastructure_causes_are_not_revealed() -> None:
    body = _body(http_errors.error_response(DatabaseUnavailableError("host 10.0.0.7 refused"), "c"))
    assert "10.0.0.7" not in body["error"]["message"]


def _outcome(status: TxStatus, code: ErrorCode | None = None, *, replayed: bool = False, **extra: Any) -> Outcome:
    return Outcome(transaction_for(REQUEST, status, **extra), code, replayed=replayed)


def test_completed_is_201_with_the_transaction() -> None:
    response = http_errors.outcome_response(_outcome(TxStatus.COMPLETED, balance_cents=750), "c")
    assert response.status == 201
    body = _body(response)
    assert body["status"] == "COMPLETED"
    assert body["balanceCents"] == 750
    assert "Idempotent-Replayed" not in response.headers


@pytest.mark.parametrize("status", [TxStatus.PENDING, TxStatus.PROCESSING])
def test_unfinished_is_202_with_an_escaped_location(status: TxStatus) -> None:
    response = http_errors.outcome_response(_outcome(status), "c")
    assert response.status == 202
    assert response.headers["Location"] == "/v1/transactions/bet%2F1"
    assert _body(response)["status"] == status.value


def test_202_says_when_the_transaction_is_expected_at_the_operator() -> None:
    outcome = replace(_outcome(TxStatus.PENDING), predicted_wait_s=41.23)
    response = http_errors.outcome_response(outcome, "c")
    assert response.status == 202
    assert (response.headers["X-Predicted-Wait"], response.headers["Retry-After"]) == ("41.2", "42")
    assert _body(response)["predictedWaitS"] == 41.2
    # Built without the model, but exactly the model's wire form (the OpenAPI document describes that).
    expected = AcceptedTransaction(**dict(outcome.transaction), predicted_wait_s=41.2).to_wire()
    assert _body(response) == orjson.loads(orjson.dumps(expected))


def test_an_expired_bet_is_422_final() -> None:
    response = http_errors.outcome_response(_outcome(TxStatus.REJECTED, ErrorCode.BET_EXPIRED), "c")
    assert response.status == 422
    assert (_body(response)["error"]["code"], _body(response)["error"]["retryable"]) == ("BET_EXPIRED", False)


def test_insufficient_funds_carries_the_balance() -> None:
    outcome = _outcome(TxStatus.REJECTED, ErrorCode.INSUFFICIENT_FUNDS, balance_cents=100, reason="balance 100")
    response = http_errors.outcome_response(outcome, "c")
    assert response.status == 422
    error = _body(response)["error"]
    assert (error["code"], error["balanceCents"], error["message"]) == ("INSUFFICIENT_FUNDS", 100, "balance 100")


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.PLAYER_NOT_FOUND, 404),
        (ErrorCode.CURRENCY_MISMATCH, 422),
        (ErrorCode.BET_NOT_FOUND, 422),
        (ErrorCode.BET_ALREADY_SETTLED, 422),
        (ErrorCode.BET_ALREADY_REFUNDED, 422),
        (ErrorCode.AMOUNT_MISMATCH, 422),
    ],
)
def test_rejections(code: ErrorCode, status: int) -> None:
    response = http_errors.outcome_response(_outcome(TxStatus.REJECTED, code), "c")
    assert response.status == status
    error = _body(response)["error"]
    assert error["code"] == code.value
    assert "balanceCents" not in error


def test_failed_is_502() -> None:
    response = http_errors.outcome_response(_outcome(TxStatus.FAILED, ErrorCode.OPERATOR_UNAVAILABLE), "c")
    assert response.status == 502
    assert _body(response)["error"]["code"] == "OPERATOR_UNAVAILABLE"


@pytest.mark.parametrize("status", list(TxStatus))
def test_replays_are_marked(status: TxStatus) -> None:
    response = http_errors.outcome_response(_outcome(status, ErrorCode.AMOUNT_MISMATCH, replayed=True), "c")
    assert response.headers["Idempotent-Replayed"] == "true"


async def test_domain_errors_from_the_service_reach_the_client(
    client: GatewayClient, transactions: FakeTransactions
) -> None:
    transactions.error = RequestInProgressError(1)
    response = await client.post_transaction(BET, idempotency_key="k-1")
    assert response.status == 409
    assert response.headers["Retry-After"] == "1"
    assert response.error_code == "REQUEST_IN_PROGRESS"
    assert response.body["error"]["correlationId"] == response.headers["X-Correlation-ID"]


async def test_rejection_without_an_error_code_is_internal_error(
    client: GatewayClient, transactions: FakeTransactions
) -> None:
    transactions.error = None
    transactions.status = TxStatus.REJECTED  # with no error code: a ledger bug, not the client's fault
    response = await client.post_transaction(BET, idempotency_key="k-1")
    assert response.status == 422
    assert response.error_code == "INTERNAL_ERROR"
