"""Request validation: 400 INVALID_REQUEST with per-field details, 413 for large bodies, 422 currency."""

from __future__ import annotations

from typing import Any

import pytest

from hub_gateway.client import GatewayClient, GatewayResponse
from support.gateway_fakes import FakeTransactions

BET: dict[str, Any] = {"refId": "bet-1", "type": "BET", "playerId": "p-1", "amountCents": 250, "currency": "EUR"}


def _details(response: GatewayResponse) -> dict[str, str]:
    assert response.status == 400
    assert response.error_code == "INVALID_REQUEST"
    return {d["field"]: d["message"] for d in response.body["error"]["details"]}


async def test_valid_request_reaches_the_service_with_the_key_and_correlation(
    client: GatewayClient, transactions: FakeTransactions
) -> None:
    body = {**BET, "roundId": "r-9", "gameId": "slot-7", "metadata": {"seat": 3}}
    response = await client.post_transaction(body, idempotency_key="key 1", headers={"X-Correlation-ID": "c-1"})
    assert response.status == 201
    [submitted] = transactions.submitted
    assert (submitted.client_id, submitted.key, submitted.correlation_id) == ("rgs-a", "key 1", "c-1")
    assert submitted.request.round_id == "r-9"
    assert submitted.request.metadata == {"seat": 3}


async def test_malformed_json(client: GatewayClient, transactions: FakeTransactions) -> None:
    response = await client.post_transaction(b'{"refId": "bet-1",', idempotency_key="k-1")
    assert "body" in _details(response)
    assert transactions.submitted == []


async def test_json_that_is_not_an_object(client: GatewayClient) -> None:
    assert "body" in _details(await client.post_transaction(b"[1, 2]", idempotency_key="k-1"))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amountCents": "250"}, "amountCents"),
        ({"amountCents": 2.5}, "amountCents"),
        ({"amountCents": -1}, "amountCents"),
        ({"type": "JACKPOT"}, "type"),
        ({"currency": "eur"}, "currency"),
        ({"roundClosed": "yes"}, "roundClosed"),
        ({"refId": ""}, "refId"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_wrong_fields_are_named(client: GatewayClient, change: dict[str, Any], field: str) -> None:
    assert field in _details(await client.post_transaction({**BET, **change}, idempotency_key="k-1"))


async def test_every_missing_field_is_reported(client: GatewayClient) -> None:
    details = _details(await client.post_transaction({"type": "BET"}, idempotency_key="k-1"))
    assert {"refId", "playerId", "amountCents", "currency"} <= set(details)


async def test_type_rules(client: GatewayClient) -> None:
    zero_bet = await client.post_transaction({**BET, "amountCents": 0}, idempotency_key="k-1")
    assert any("greater than 0" in m for m in _details(zero_bet).values())
    refund = await client.post_transaction({**BET, "type": "REFUND"}, idempotency_key="k-2")
    assert any("originalRefId" in m for m in _details(refund).values())


async def test_metadata_over_4_kib(client: GatewayClient) -> None:
    response = await client.post_transaction({**BET, "metadata": {"blob": "x" * 4100}}, idempotency_key="k-1")
    assert "metadata" in _details(response)


async def test_body_over_the_limit_is_400(client: GatewayClient, transactions: FakeTransactions) -> None:
    body = {**BET, "metadata": {f"k{i}": "x" * 100 for i in range(100)}}
    response = await client.post_transaction(body, idempotency_key="k-1")
    assert "8192 bytes" in _details(response)["body"]
    assert transactions.submitted == []


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b'"text"', b"42", b'{"refId": NaN}', b"\xff\xfe", b'{"a": 1} trailing'],
)
async def test_bodies_that_are_no_json_object(client: GatewayClient, body: bytes) -> None:
    assert "body" in _details(await client.post_transaction(body, idempotency_key="k-1"))


@pytest.mark.parametrize("amount", [True, 1.0, "1", None, [1], {"cents": 1}, 10**16, -(10**16), 1e3])
async def test_amount_must_be_a_plain_integer(client: GatewayClient, amount: object) -> None:
    assert "amountCents" in _details(await client.post_transaction({**BET, "amountCents": amount}, idempotency_key="k"))


async def test_nested_unknown_field_and_null_required_field(client: GatewayClient) -> None:
    details = _details(await client.post_transaction({**BET, "playerId": None, "extra": {}}, idempotency_key="k"))
    assert {"playerId", "extra"} <= set(details)


async def test_refund_carrying_zero_is_accepted(client: GatewayClient, transactions: FakeTransactions) -> None:
    refund = {**BET, "type": "REFUND", "amountCents": 0, "originalRefId": "bet-0"}
    assert (await client.post_transaction(refund, idempotency_key="k-1")).status == 201
    assert transactions.submitted[0].request.amount_cents == 0


@pytest.mark.parametrize("key", [None, "", "x" * 256, "tab\there", "ünïcode"])
async def test_idempotency_key_is_required_and_printable(client: GatewayClient, key: str | None) -> None:
    headers = {"Idempotency-Key": key.encode().decode("latin-1")} if key is not None else None
    response = await client.post_transaction(BET, idempotency_key=None, headers=headers)
    assert "Idempotency-Key" in _details(response)


async def test_255_character_key_is_accepted(client: GatewayClient) -> None:
    assert (await client.post_transaction(BET, idempotency_key="k" * 255)).status == 201


async def test_unsupported_currency_is_422(client: GatewayClient, transactions: FakeTransactions) -> None:
    response = await client.post_transaction({**BET, "currency": "JPY"}, idempotency_key="k-1")
    assert response.status == 422
    assert response.error_code == "UNSUPPORTED_CURRENCY"
    assert response.body["error"]["details"][0]["field"] == "currency"
    assert transactions.submitted == []
