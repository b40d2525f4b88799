"""The gateway's HTTP layer served on loopback, with in-memory services instead of Kafka and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from hub_common.http import Ops
from hub_gateway.app import build_http_app
from hub_gateway.client import GatewayClient
from hub_gateway.handlers import BALANCES, TRANSACTIONS
from hub_gateway.settings import GatewaySettings
from support.apps import serve
from support.gateway_fakes import (
    CLIENT_ID,
    NEW_SECRET,
    OLD_SECRET,
    OTHER_CLIENT,
    OTHER_SECRET,
    FakeBalances,
    FakeTransactions,
)


@pytest.fixture
def settings() -> GatewaySettings:
    return GatewaySettings(
        clients={CLIENT_ID: [OLD_SECRET, NEW_SECRET], OTHER_CLIENT: [OTHER_SECRET]},
        max_body_bytes=8 * 1024,
    )


@pytest.fixture
def transactions() -> FakeTransactions:
    return FakeTransactions()


@pytest.fixture
def balances() -> FakeBalances:
    return FakeBalances()


@pytest.fixture
async def base_url(
    settings: GatewaySettings, transactions: FakeTransactions, balances: FakeBalances
) -> AsyncIterator[str]:
    app = build_http_app(settings, Ops("gateway"))
    app[TRANSACTIONS] = transactions
    app[BALANCES] = balances
    async with serve(app) as url:
        yield url


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        yield http


@pytest.fixture
def client(session: aiohttp.ClientSession, base_url: str) -> GatewayClient:
    return GatewayClient(session, base_url, CLIENT_ID, NEW_SECRET)
