"""The RGS integration kit against a whole running Hub: the client library and its webhook verification (and a
Standard Webhooks library's), the guide's Node.js and curl examples, and the example `make up` prints."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import orjson
import pytest
from standardwebhooks import Webhook

from hub_client import AsyncHubClient, bet, standard_webhooks_secret, verify_webhook
from hub_devstack.demo import seed_players
from hub_devstack.facts import StackFacts
from hub_devstack.stack import RunningStack
from hub_devstack.up import CLIENT_EXAMPLE, usage
from mock_rgs.admin_client import RgsAdminClient
from mock_rgs.models import Delivery

EXAMPLES = Path(__file__).parents[3] / "docs" / "examples"


@pytest.fixture
async def facts(stack: RunningStack) -> StackFacts:
    async with aiohttp.ClientSession() as session:
        await seed_players(session, stack.facts.operator_url)
    return stack.facts


def _env(facts: StackFacts) -> dict[str, str]:
    return {**os.environ, **facts.as_env()}


async def _delivery(rgs: RgsAdminClient, ref_id: str, timeout_s: float = 30) -> Delivery:
    async with asyncio.timeout(timeout_s):
        while True:
            for delivery in (await rgs.webhooks()).received:
                if isinstance(delivery.body, dict) and delivery.body["data"]["refId"] == ref_id:
                    return delivery
            await asyncio.sleep(0.2)


async def test_a_bet_with_the_client_and_its_webhook_verified_by_both_libraries(facts: StackFacts) -> None:
    ref_id = f"kit-{uuid.uuid4().hex[:12]}"
    async with AsyncHubClient.from_env(facts.as_env()) as hub:
        done = await hub.submit(bet(ref_id, "demo-bob", 100, "EUR", round_id="r-1"))
        again = await hub.submit(bet(ref_id, "demo-bob", 100, "EUR", round_id="r-1"))
    assert done.status == "COMPLETED" and again == done
    async with aiohttp.ClientSession() as session:
        delivery = await _delivery(RgsAdminClient(session, facts.rgs_url), ref_id)
    assert delivery.verified  # the mock RGS verifies with hub_client too
    raw = orjson.dumps(delivery.body)  # the dispatcher's bytes: orjson of the same document
    event = verify_webhook(delivery.headers, raw, [facts.webhook_secret])
    assert (event.event_type, event.transaction.transaction_id) == ("transaction.completed", done.transaction_id)
    verified = Webhook(standard_webhooks_secret(facts.webhook_secret)).verify(raw, delivery.headers)
    assert verified["eventId"] == event.event_id


def test_the_example_make_up_prints_places_a_bet(facts: StackFacts) -> None:
    printed = usage(facts, Path(".hub/env"))
    assert all(f"  {line}\n" in printed + "\n" for line in CLIENT_EXAMPLE)
    run = subprocess.run(
        [sys.executable, "-c", "\n".join(CLIENT_EXAMPLE)],
        env=_env(facts),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "status='COMPLETED'" in run.stdout, run.stdout


@pytest.mark.parametrize("command", [["node", "first-bet.mjs"], ["bash", "first-bet.sh"]], ids=["node", "curl"])
def test_the_guides_examples_place_a_bet(facts: StackFacts, command: list[str]) -> None:
    # Not skipped without node: `make setup` installs it; a missing tool is a failure to see.
    assert shutil.which(command[0]), f"{command[0]} is not installed (scripts/bootstrap.sh installs it)"
    run = subprocess.run(
        [*command, "demo-carol"], cwd=EXAMPLES, env=_env(facts), capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert '"status":"COMPLETED"' in run.stdout.replace(" ", ""), run.stdout
