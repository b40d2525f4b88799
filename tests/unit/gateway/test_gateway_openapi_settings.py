"""The OpenAPI document, the ops routes of the HTTP layer, and settings loading."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from hub_common.schemas import Balance
from hub_gateway.__main__ import load_settings
from hub_gateway.client import GatewayClient
from hub_gateway.openapi import build_document
from hub_gateway.settings import GatewaySettings
from support.gateway_fakes import FakeBalances


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def test_document_refs_all_resolve() -> None:
    document = build_document()
    assert document["openapi"].startswith("3.")
    schemas = document["components"]["schemas"]
    assert {"TransactionRequest", "Transaction", "ErrorBody", "Balance"} <= set(schemas)
    for ref in _refs(document):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas


def test_document_uses_wire_names() -> None:
    request = build_document()["components"]["schemas"]["TransactionRequest"]
    assert {"refId", "type", "playerId", "amountCents", "currency"} <= set(request["required"])
    assert request["additionalProperties"] is False
    post = build_document()["paths"]["/v1/transactions"]["post"]
    assert {"201", "202", "400", "401", "409", "422", "429", "503"} <= set(post["responses"])


async def test_openapi_health_and_ready_are_served(session: aiohttp.ClientSession, base_url: str) -> None:
    async with session.get(base_url + "/openapi.json") as response:
        assert response.status == 200
        assert (await response.json())["paths"]
        assert response.headers["X-Correlation-ID"]
    async with session.get(base_url + "/ready") as response:
        assert response.status == 503  # the HTTP layer alone never becomes ready
    async with session.get(base_url + "/health") as response:
        assert (await response.json())["status"] == "ok"


async def test_balance_endpoint(client: GatewayClient, balances: FakeBalances) -> None:
    balances.balances["p/1"] = Balance(player_id="p/1", balance_cents=1200, currency="EUR")
    response = await client.get_balance("p/1")  # percent-encoded in the path, decoded before the lookup
    assert response.status == 200
    assert response.body == {"playerId": "p/1", "balanceCents": 1200, "currency": "EUR"}


async def test_path_ids_are_held_to_the_body_fields_rule(client: GatewayClient, balances: FakeBalances) -> None:
    # A playerId the body would refuse (a space, a control character, > 128 characters) is refused in the path
    # too, before any operator call; so is such a refId.
    balances.balances["p 1"] = Balance(player_id="p 1", balance_cents=1200, currency="EUR")
    for player in ("p 1", "p\x01", "p" * 129):
        response = await client.get_balance(player)
        assert (response.status, response.error_code) == (400, "INVALID_REQUEST"), player
        assert [d["field"] for d in response.body["error"]["details"]] == ["playerId"]
    bad_ref = await client.get_transaction("bet 1")
    assert (bad_ref.status, bad_ref.error_code) == (400, "INVALID_REQUEST")
    assert [d["field"] for d in bad_ref.body["error"]["details"]] == ["refId"]


def test_clients_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CLIENTS", '{"rgs-demo": ["secret-a", "secret-b"]}')
    monkeypatch.setenv("GATEWAY_SUPPORTED_CURRENCIES", '["eur", "USD"]')
    monkeypatch.setenv("GATEWAY_OUTCOME_BUDGET_S", "0.5")
    settings = load_settings()
    assert [s.get_secret_value() for s in settings.clients["rgs-demo"]] == ["secret-a", "secret-b"]
    assert settings.supported_currencies == ["EUR", "USD"]
    assert settings.outcome_budget_s == 0.5
    assert settings.port == 3000
    assert "secret-a" not in repr(settings)


def test_invalid_settings_exit_2_without_echoing_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GATEWAY_CLIENTS", '{"rgs-demo": "top-secret-value"}')
    with pytest.raises(SystemExit) as exited:
        load_settings()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "clients" in err
    assert "top-secret-value" not in err


def test_a_client_without_secrets_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        GatewaySettings(clients={"rgs-demo": []})
