"""schemathesis against the live gateway (real Kafka and PostgreSQL): no 5xx, no response outside the document."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from hub_common.operator import OperatorSettings
from hub_gateway.openapi import build_document
from hub_gateway.openapi_catalogue import REQUEST_EXAMPLES
from hub_gateway.settings import GatewaySettings
from mock_operator.app import create_app as create_operator
from mock_operator.models import PlayerSeed
from mock_operator.settings import MockOperatorSettings
from support.apps import serve
from support.gateway_it import CLIENT_ID, SECRET, running_gateway
from support.gateway_schemathesis import SignedAuth, fuzz

# Roomy enough that the shared operator budget never makes balance reads wait during the run.
RATE = 100_000


# schemathesis' own strategies draw from the `random` module, which hypothesis deprecates (not our code).
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
async def test_no_server_errors_and_every_response_matches_the_document(gateway_settings: GatewaySettings) -> None:
    operator_secret = SecretStr("operator-secret")
    operator = MockOperatorSettings(
        secret=operator_secret,
        rate_limit_per_minute=RATE,
        players=[PlayerSeed(player_id="p-1", balance_cents=4200, currency="EUR")],
    )
    async with serve(create_operator(operator)) as operator_url:
        settings = gateway_settings.model_copy(
            update={
                "outcome_budget_s": 0.0,
                "operator": OperatorSettings(url=operator_url, secret=operator_secret, rate_per_minute=RATE),
            }
        )
        async with running_gateway(settings) as gw:
            report = await asyncio.to_thread(
                fuzz,
                build_document(),
                gw.url,
                SignedAuth(CLIENT_ID, SECRET),
                max_examples=30,
                time_budget_s=60,
            )
    # Signed requests reached every handler: admissions, lookups and balances (the document's examples are sent in
    # every run; generated requests reach them too, some runs more than others).
    statuses = report.statuses
    assert report.calls > 50
    # At least the document's request examples, each its own admission.
    assert statuses["POST /v1/transactions"].get(202, 0) >= len(REQUEST_EXAMPLES), statuses
    # 400: a generated refId the body's refId rule refuses (documented); 404: a lookup that reached the store.
    assert set(statuses["GET /v1/transactions/{refId}"]) <= {200, 400, 404}, statuses
    assert 404 in statuses["GET /v1/transactions/{refId}"], statuses
    assert 200 in statuses["GET /v1/players/{playerId}/balance"], statuses
    assert all(401 not in counts for counts in statuses.values()), statuses
