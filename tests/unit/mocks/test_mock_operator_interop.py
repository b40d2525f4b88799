"""The Hub's own operator client (`hub_common.operator`) against the mock: both sides read contract section 3 alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from hub_common.operator.client import OperatorClient, OperatorTransactionRequest
from hub_common.operator.errors import OperatorRateLimited, OperatorRejected, OperatorTechnicalError
from hub_common.operator.settings import OperatorSettings
from hub_common.schemas import ErrorCode, TxType
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.app import create_app
from mock_operator.models import FaultConfig
from mock_operator.settings import MockOperatorSettings
from support.apps import serve


@pytest.fixture
async def real_clock_operator(operator_settings: MockOperatorSettings) -> AsyncIterator[str]:
    # The Hub's client signs with the wall clock, so this instance runs on it too.
    settings = operator_settings.model_copy(update={"client_id": "integration-hub"})
    async with serve(create_app(settings)) as url:
        yield url


@pytest.fixture
async def hub_client(
    real_clock_operator: str, operator_settings: MockOperatorSettings
) -> AsyncIterator[OperatorClient]:
    client = OperatorClient(
        OperatorSettings(url=real_clock_operator, secret=operator_settings.secret, timeout_s=1.0, breaker_failures=100),
        caller="ledger",
    )
    yield client
    await client.close()


def request(transaction_id: str, amount: int = 100, **extra: str) -> OperatorTransactionRequest:
    return OperatorTransactionRequest(
        transaction_id=transaction_id, player_id="p-1", type=TxType.BET, amount_cents=amount, currency="EUR", **extra
    )


async def test_bet_lookup_and_balance(hub_client: OperatorClient) -> None:
    applied = await hub_client.post_transaction(request("b-1", 300), correlation_id="c-1")
    assert (applied.transaction_id, applied.balance_cents) == ("b-1", 700)
    found = await hub_client.get_transaction("b-1", correlation_id="c-2")
    assert found is not None
    assert found.operator_transaction_id == applied.operator_transaction_id
    assert await hub_client.get_transaction("never", correlation_id="c-3") is None
    assert (await hub_client.get_balance("p-1", correlation_id="c-4")).balance_cents == 700


async def test_rejections_are_classified(hub_client: OperatorClient) -> None:
    with pytest.raises(OperatorRejected) as funds:
        await hub_client.post_transaction(request("b-1", 5000), correlation_id="c")
    assert (funds.value.code, funds.value.balance_cents) == (ErrorCode.INSUFFICIENT_FUNDS, 1000)
    with pytest.raises(OperatorRejected) as player:
        await hub_client.post_transaction(request("b-2").model_copy(update={"player_id": "ghost"}), correlation_id="c")
    assert player.value.code is ErrorCode.PLAYER_NOT_FOUND


async def test_faults_reach_the_client_as_technical_errors(
    hub_client: OperatorClient, real_clock_operator: str
) -> None:
    async with aiohttp.ClientSession() as http:
        admin = OperatorAdminClient(http, real_clock_operator)
        await admin.set_faults(FaultConfig(force429=1, retry_after_s=3))
        with pytest.raises(OperatorRateLimited) as limited:
            await hub_client.get_balance("p-1", correlation_id="c")
        assert limited.value.retry_after_s == 3
        await admin.set_faults(FaultConfig(timeout_after_apply_rate=1.0, hang_ms=60_000))
        with pytest.raises(OperatorTechnicalError) as unknown:
            await hub_client.post_transaction(request("b-1"), correlation_id="c")
        assert unknown.value.outcome_unknown
        await admin.clear_faults()
        assert await hub_client.get_transaction("b-1", correlation_id="c") is not None
