from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from hub_common.envelope import EnvelopeError, decode, wrap
from hub_common.schemas import Transaction, TransactionRequest, TxStatus, TxType

VALID: dict[str, Any] = {
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


def test_contract_example_parses() -> None:
    req = TransactionRequest.model_validate(VALID)
    assert req.type is TxType.BET
    assert req.amount_cents == 250


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"amountCents": -1}, "amountCents"),
        ({"amountCents": 2.5}, "amountCents"),
        ({"amountCents": "250"}, "amountCents"),
        ({"amountCents": 0}, None),
        ({"currency": "eur"}, "currency"),
        ({"type": "DEPOSIT"}, "type"),
        ({"unknown": 1}, "unknown"),
        ({"metadata": {"x": "y" * 5000}}, "metadata"),
        ({"refId": ""}, "refId"),
        ({"roundClosed": "yes"}, "roundClosed"),
    ],
)
def test_invalid_requests_name_the_field(patch: dict[str, Any], field: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        TransactionRequest.model_validate(VALID | patch)
    locations = {str(err["loc"][0]) if err["loc"] else None for err in info.value.errors()}
    assert field in locations


def test_refund_needs_original_ref_and_win_may_be_zero() -> None:
    with pytest.raises(ValidationError, match="originalRefId"):
        TransactionRequest.model_validate(VALID | {"type": "REFUND"})
    assert TransactionRequest.model_validate(VALID | {"type": "WIN", "amountCents": 0}).amount_cents == 0


def test_missing_field_is_reported() -> None:
    body = dict(VALID)
    del body["playerId"]
    with pytest.raises(ValidationError) as info:
        TransactionRequest.model_validate(body)
    assert info.value.errors()[0]["loc"] == ("playerId",)


def test_envelope_roundtrip_and_schema_check() -> None:
    now = datetime.now(UTC)
    tx = Transaction(
        transaction_id="t",
        ref_id="r",
        type=TxType.WIN,
        player_id="p",
        amount_cents=1,
        currency="EUR",
        status=TxStatus.COMPLETED,
        created_at=now,
        updated_at=now,
    )
    env = decode(wrap(tx, correlation_id="c").encode())
    assert env.schema_name == "Transaction/1"
    assert env.payload["refId"] == "r"
    assert env.payload_as(Transaction) == tx
    with pytest.raises(EnvelopeError, match="is not"):
        env.payload_as(TransactionRequest)


@pytest.mark.parametrize("raw", [None, b"", b"[]", b'{"schema": "X/1"}', b"\xff"])
def test_garbage_is_an_envelope_error(raw: bytes | None) -> None:
    with pytest.raises(EnvelopeError):
        decode(raw)


def test_final_statuses() -> None:
    assert {s for s in TxStatus if s.is_final} == {TxStatus.COMPLETED, TxStatus.REJECTED, TxStatus.FAILED}
