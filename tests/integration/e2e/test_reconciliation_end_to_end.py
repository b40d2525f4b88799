"""Every mismatch category seeded on purpose through the whole running Hub (gateway, ledger, mock operator, the
reconciler's feed poller and join, each a real process on the real broker and database), plus what must NOT be
reported (a matched bet, a tombstone refund, a rejected bet, a bet the ledger cancelled); `hubctl reconcile` over
the day must list exactly the seeded mismatches, and the continuous join must hold exactly the same ones open.

This module runs its own stack: the feed is on (the directory's shared stack turns it off), the BET deadline and
the operator timeout are short so a bet can be cancelled within seconds, and findings wait 5 s, not 10 min.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from pydantic import SecretStr

from hub_common.kafka import MISMATCHES, KafkaConsumer
from hub_common.operator import cancel_id, operator_id
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_devstack.stack import RunningStack
from hub_devstack.stack_config import StackConfig
from hub_gateway.client import GatewayClient
from hubctl.context import HubctlSettings
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import FaultConfig, PlayerSeed, RecordChange, RecordSeed
from support.hubctl import hubctl
from support.waits import eventually

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stack_config(stack_config: StackConfig) -> StackConfig:
    env = {k: v for k, v in stack_config.extra_env.items() if k != "RECONCILER_FEED_ENABLED"}
    env |= {
        # The feed reads every second, records at least 3 s old: an alteration made just after the Hub's answer
        # is what the feed stores, as an operator-side correction made before the feed read the record would be.
        "RECONCILER_FEED_POLL_INTERVAL_S": "1",
        "RECONCILER_FEED_DELAY_S": "3",
        "RECONCILER_GRACE_WINDOW_S": "5",
        "RECONCILER_SWEEP_INTERVAL_S": "1",
        # A BET whose outcome stays unknown for 3 s is cancelled (FAILED + compensating refund).
        "LEDGER_BET_DEADLINE_S": "3",
        "LEDGER_OPERATOR__TIMEOUT_S": "0.5",
        "LEDGER_RETRY_MAX_S": "0.5",
    }
    return dataclasses.replace(stack_config, extra_env=env)


class Seeder:
    def __init__(self, session: aiohttp.ClientSession, stack: RunningStack, tag: str) -> None:
        facts = stack.facts
        self.client_id = facts.hub_client_id
        self.operator = OperatorAdminClient(session, facts.operator_url)
        self.gateway = GatewayClient(session, facts.hub_url, facts.hub_client_id, SecretStr(facts.hub_client_secret))
        self.tag = tag
        self.player = f"rec-{tag}"

    def ref(self, name: str) -> str:
        return f"{name}-{self.tag}"

    def op_id(self, name: str) -> str:
        return operator_id(self.client_id, self.ref(name))

    async def send(self, name: str, *, answer: int | None = 201, **fields: Any) -> dict[str, Any]:
        body = {"refId": self.ref(name), "type": "BET", "playerId": self.player, "amountCents": 500, "currency": "EUR"}
        body |= fields
        response = await self.gateway.request(
            "POST", "/v1/transactions", body=orjson.dumps(body), headers={"Idempotency-Key": f"k-{body['refId']}"}
        )
        assert answer is None or response.status == answer, response.body
        result: dict[str, Any] = response.body
        return result


async def status_of(conn: asyncpg.Connection, ref_id: str) -> str | None:
    value = await conn.fetchval("SELECT status FROM transactions WHERE ref_id = $1", ref_id)
    return str(value) if value is not None else None


class Published:
    """The join's events on hub.reconciliation.mismatches, read from the start of the stack's topic."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer
        self.open: set[tuple[str, str]] = set()
        self.opened = 0
        self.resolved = 0

    async def open_now(self, expected: set[tuple[str, str]]) -> bool:
        batch = await self._consumer.getmany(timeout_ms=200)
        for record in batch.records:
            payload = record.envelope.payload
            finding = (payload["operatorId"], payload["kind"])
            if record.envelope.schema_name == "Mismatch/1":
                self.opened += 1
                self.open.add(finding)
            else:
                self.resolved += 1
                self.open.discard(finding)
        return self.open == expected


async def test_report_and_join_hold_exactly_the_seeded_mismatches(
    stack: RunningStack, stack_config: StackConfig, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    # From the day the seeding starts to the day it ends: a run across midnight UTC reports both days.
    first_day = datetime.now(UTC).date()
    conn = await asyncpg.connect(stack.facts.database_url)
    kafka = KafkaSettings(bootstrap_servers=stack.facts.kafka_bootstrap_servers, topic_prefix=stack_config.topic_prefix)
    consumer = KafkaConsumer(kafka, [MISMATCHES], group_id=f"e2e-mismatches-{tag}", dlq_producer=None, client_id="e2e")
    await consumer.start()
    published = Published(consumer)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            seed = Seeder(session, stack, tag)
            await seed.operator.seed_players(
                [
                    PlayerSeed(player_id=seed.player, balance_cents=100_000, currency="EUR"),
                    PlayerSeed(player_id=f"poor-{tag}", balance_cents=0, currency="EUR"),
                ]
            )
            expected = await seed_mismatches(seed)
            await seed_consistent(seed, conn)
            last_change = datetime.now(UTC)
            last_day = last_change.date()

        # The feed has read everything seeded (its coverage passed the last change): the report is complete.
        async def feed_read_all() -> bool:
            covered = await conn.fetchval("SELECT max(covered_to) FROM operator_feed_state")
            return covered is not None and covered > last_change

        await eventually(feed_read_all, timeout_s=60, step_s=0.5, what="the feed to cover the seeded records")

        ctl = HubctlSettings(database=DatabaseSettings(url=SecretStr(stack.facts.database_url)), dev_mode=False)
        ran = await hubctl(
            ctl,
            "reconcile",
            "--from",
            first_day.isoformat(),
            "--to",
            last_day.isoformat(),
            "--out",
            str(tmp_path),
            "--json",
        )
        summary = ran.json()
        # The day is not over (`complete` is false until the feed covers its end), but everything seeded is judged.
        assert (summary["awaitingFeed"], summary["inFlight"]) == (0, 0), summary
        header, *lines = (await asyncio.to_thread(Path(summary["report"]).read_text)).splitlines()
        assert header.split(",")[:3] == ["ref_id", "operator_id", "kind"]
        reported = {tuple(line.split(",")[1:3]) for line in lines}
        assert reported == expected
        assert len(lines) == len(expected)  # one line each, nothing else
        assert summary["byKind"] == {kind: 1 for _, kind in expected}

        # The continuous join, fed the same streams, reports the same mismatches on hub.reconciliation.mismatches.
        await eventually(
            lambda: published.open_now(expected), timeout_s=60, step_s=0.5, what="the join's mismatch events"
        )
        # Judged again on later sweeps, nothing more is published: no duplicate, no event for the consistent ones.
        await asyncio.sleep(3)
        assert await published.open_now(expected)
        assert published.opened == len(expected) and published.resolved == 0
    finally:
        await consumer.stop()
        await conn.close()


async def seed_mismatches(seed: Seeder) -> set[tuple[str, str]]:
    """One of each category, made the way it happens: the Hub completes a bet, then the operator's record
    differs from it (an operator-side correction), goes missing, or exists without a Hub transaction."""
    for name, change in (
        ("amount", RecordChange(amount_cents=1)),
        ("currency", RecordChange(currency="USD")),
        ("status", RecordChange(status="REVERSED")),
    ):
        assert (await seed.send(name))["status"] == "COMPLETED"
        await seed.operator.alter_record(seed.op_id(name), change)
    assert (await seed.send("lost"))["status"] == "COMPLETED"
    await seed.operator.lose_record(seed.op_id("lost"))
    await seed.operator.add_records(
        [RecordSeed(transaction_id=seed.op_id("ghost"), player_id=seed.player, amount_cents=700, currency="EUR")]
    )
    return {
        (seed.op_id("amount"), "AMOUNT_MISMATCH"),
        (seed.op_id("currency"), "CURRENCY_MISMATCH"),
        (seed.op_id("status"), "STATUS_MISMATCH"),
        (seed.op_id("lost"), "MISSING_IN_OPERATOR"),
        (seed.op_id("ghost"), "MISSING_IN_HUB"),
    }


async def seed_consistent(seed: Seeder, conn: asyncpg.Connection) -> None:
    """What must not be reported: a matched bet, a tombstone refund (no operator call), a rejected bet, and a bet
    whose outcome stayed unknown past its deadline (FAILED) whose compensating cancel the operator applied."""
    assert (await seed.send("ok"))["status"] == "COMPLETED"
    tombstone = await seed.send("tombstone", type="REFUND", originalRefId=seed.ref("never-seen"))
    assert tombstone["status"] == "COMPLETED"
    refused = await seed.send("poor", answer=422, playerId=f"poor-{seed.tag}")
    assert refused["error"]["code"] == "INSUFFICIENT_FUNDS"
    assert await status_of(conn, seed.ref("poor")) == "REJECTED"

    # The operator applies the BET, but its answer never comes (the call hangs past the ledger's timeout), and then
    # every call fails: the ledger cannot learn the outcome before the BET's deadline, so it cancels it.
    await seed.operator.set_faults(FaultConfig(timeout_after_apply_rate=1.0, hang_ms=1_500))
    try:
        sending = asyncio.create_task(seed.send("cancelled", answer=None))

        async def applied() -> bool:
            return seed.op_id("cancelled") in (await seed.operator.ledger()).apply_counts

        await eventually(applied, timeout_s=30, step_s=0.02, what="the operator to apply the BET")
        await seed.operator.set_faults(FaultConfig(error_rate=1.0, error_status=503))

        async def failed() -> bool:
            return await status_of(conn, seed.ref("cancelled")) == "FAILED"

        await eventually(failed, timeout_s=60, step_s=0.2, what="the unknown BET to be FAILED")
        await sending
    finally:
        await seed.operator.clear_faults()
    cancel = cancel_id(seed.op_id("cancelled"))

    async def cancel_applied() -> bool:
        status = await conn.fetchval(
            "SELECT status FROM ledger_compensations WHERE operator_transaction_id = $1", cancel
        )
        return bool(status == "COMPLETED")

    await eventually(cancel_applied, timeout_s=60, step_s=0.2, what="the compensating cancel to be applied")
    ledger = await seed.operator.ledger()
    # The operator applied the bet (before the hang) and its cancel: net zero, consistent.
    assert ledger.apply_counts.get(seed.op_id("cancelled")) == 1
    assert ledger.apply_counts.get(cancel) == 1
    assert seed.op_id("tombstone") not in ledger.apply_counts
