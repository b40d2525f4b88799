"""A whole Hub for the overload tests: every process but the reconciler, at a given operator budget."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr

from hub_devstack.burst import Answer, burst_players, send_burst
from hub_devstack.kafka import delete_topics
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.stack import RunningStack, run_stack
from hub_devstack.stack_config import SERVICES
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import PlayerSeed
from support.stacks import own_stack

# The forecast reads the shared state often, the dispatcher retries fast: shortened by configuration only.
BASE_ENV = {
    "GATEWAY_FORECAST_REFRESH_S": "0.2",
    "GATEWAY_BET_USEFUL_LIFE_S": "10",
}


@contextmanager
def overload_stack(
    state_dir: Path,
    kafka_bootstrap: str,
    postgres_admin_url: str,
    db_roles: DatabaseRoles,
    *,
    rate_per_minute: int,
    env: Mapping[str, str],
) -> Iterator[RunningStack]:
    config = own_stack(
        state_dir,
        "overload",
        kafka_bootstrap=kafka_bootstrap,
        admin_database_url=postgres_admin_url,
        db_roles=db_roles,
        operator_rate_per_minute=rate_per_minute,
        extra_env={**BASE_ENV, **env},
        ready_timeout_s=90,
        # Not the reconciler: its feed would spend the budget under test.
        services=tuple(s for s in SERVICES if s.name != "reconciler"),
    )
    with run_stack(config) as running:
        yield running
    asyncio.run(delete_topics(running.facts.kafka_bootstrap_servers, config.topic_prefix))


async def burst(stack: RunningStack, requests: list[dict[str, Any]], *, concurrency: int) -> list[Answer]:
    """Fund the burst's players, then send it once."""
    facts = stack.facts
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        operator = OperatorAdminClient(session, facts.operator_url)
        seeds = [PlayerSeed(player_id=p, balance_cents=1_000_000, currency="EUR") for p in burst_players(requests)]
        await operator.seed_players(seeds)
        secret = SecretStr(facts.hub_client_secret)
        return await send_burst(session, facts.hub_url, facts.hub_client_id, secret, requests, concurrency=concurrency)
