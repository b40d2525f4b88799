"""Both mocks served in-process on loopback, with a controllable clock for the operator."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from pydantic import SecretStr

from mock_operator.admin_client import OperatorAdminClient
from mock_operator.app import create_app
from mock_operator.client import SignedV2Client
from mock_operator.models import PlayerSeed
from mock_operator.settings import MockOperatorSettings
from mock_rgs.admin_client import RgsAdminClient
from mock_rgs.app import create_app as create_rgs_app
from mock_rgs.settings import MockRgsSettings
from support.apps import serve

OPERATOR_SECRET = SecretStr("operator-test-secret")
START = 1_700_000_000.0


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """Test modules annotate it as `Callable[[], float]` and move it with the `advance` fixture."""
    return FakeClock()


@pytest.fixture
def advance(clock: FakeClock) -> Callable[[float], None]:
    return clock.advance


@pytest.fixture
def operator_secret() -> SecretStr:
    return OPERATOR_SECRET


@pytest.fixture
def operator_settings() -> MockOperatorSettings:
    return MockOperatorSettings(
        secret=OPERATOR_SECRET,
        rate_limit_per_minute=1000,
        hang_ms=200,
        players=[PlayerSeed(player_id="p-1", balance_cents=1000, currency="EUR")],
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture
async def operator_url(operator_settings: MockOperatorSettings, clock: FakeClock) -> AsyncIterator[str]:
    async with serve(create_app(operator_settings, clock=clock)) as url:
        yield url


@pytest.fixture
def v2(http: aiohttp.ClientSession, operator_url: str, clock: FakeClock) -> SignedV2Client:
    return SignedV2Client(http, operator_url, OPERATOR_SECRET, clock=clock)


@pytest.fixture
def admin(http: aiohttp.ClientSession, operator_url: str) -> OperatorAdminClient:
    return OperatorAdminClient(http, operator_url)


RGS_SECRETS = [SecretStr("wh-secret-new"), SecretStr("wh-secret-old")]


@pytest.fixture
def rgs_secrets() -> list[SecretStr]:
    return RGS_SECRETS


@pytest.fixture
async def rgs_url() -> AsyncIterator[str]:
    async with serve(create_rgs_app(MockRgsSettings(secrets=RGS_SECRETS, behaviour_seed=7))) as url:
        yield url


@pytest.fixture
def rgs_admin(http: aiohttp.ClientSession, rgs_url: str) -> RgsAdminClient:
    return RgsAdminClient(http, rgs_url)
