"""A burst far above the operator budget, on the real stack (every process, 20 operator calls a minute, a BET
useful life of 10 s): fast answers, BETs refused with an honest Retry-After while every WIN is admitted, nothing
admitted is lost, and the operator never sees more than its budget."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from hub_common.operator import operator_id
from hub_devstack.burst import burst_requests, states
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.stack import RunningStack
from mock_operator.admin_client import OperatorAdminClient
from mock_rgs.admin_client import RgsAdminClient
from support.overload import burst, overload_stack
from support.waits import eventually

RATE = 20


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, kafka_bootstrap: str, postgres_admin_url: str, db_roles: DatabaseRoles
) -> Iterator[Any]:
    state = tmp_path_factory.mktemp("overload-low")
    with overload_stack(state, kafka_bootstrap, postgres_admin_url, db_roles, rate_per_minute=RATE, env={}) as running:
        yield running


async def _gateway_metric(stack: RunningStack, name: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(stack.facts.hub_url + "/metrics") as response:
        text = await response.text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


async def test_a_burst_far_over_the_budget(stack: RunningStack) -> None:
    run = uuid.uuid4().hex[:6]
    requests = burst_requests(run, bets=100, wins=10, players=20)
    answers = await burst(stack, requests, concurrency=20)
    bets = [a for a in answers if a.type == "BET"]
    wins = [a for a in answers if a.type == "WIN"]

    # WINs are money owed: never refused. BETs beyond what fits in their useful life are, with a Retry-After.
    assert [a.status for a in wins if a.status not in (201, 202)] == []
    refused = [a for a in bets if a.status == 429]
    admitted = [a for a in answers if a.status in (201, 202)]
    assert refused, "a burst five times the budget must refuse BETs"
    assert all(a.error_code == "RATE_LIMITED" and a.retry_after and int(a.retry_after) >= 1 for a in refused)
    first_refusal = answers.index(refused[0])
    assert any(answers.index(w) > first_refusal for w in wins), "credits are admitted while BETs are refused"
    # At most the calls of one window (20) fit in a 10 s useful life at 20 a minute.
    admitted_bets = [a for a in bets if a.status in (201, 202)]
    assert 0 < len(admitted_bets) <= RATE
    assert {a.status for a in answers} <= {201, 202, 429}
    # Every 202 says when the transaction is expected at the operator; none predicted past the 5 s budget
    # held its connection for it.
    assert all(a.predicted_wait is not None for a in answers if a.status == 202)
    late = [a for a in answers if a.status == 202 and float(a.predicted_wait or 0) > 5]
    assert await _gateway_metric(stack, "gateway_accepted_at_once_total") >= len(late)

    # Nothing admitted is lost: every admitted transaction reaches a final state; nothing refused was stored.
    admitted_refs = {a.ref_id for a in admitted}

    async def all_final() -> bool:
        found = await states(stack.facts.database_url, [r["refId"] for r in requests])
        return set(found) == admitted_refs and all(s.status in ("COMPLETED", "REJECTED") for s in found.values())

    await eventually(all_final, timeout_s=120, step_s=0.5, what="every admitted transaction to be final")
    final = await states(stack.facts.database_url, sorted(admitted_refs))
    assert all(final[w.ref_id].status == "COMPLETED" for w in wins)
    # A BET is sent within its useful life or ends BET_EXPIRED (nothing debited), never anything else.
    assert all(
        final[b.ref_id].status == "COMPLETED" or final[b.ref_id].error_code == "BET_EXPIRED" for b in admitted_bets
    )

    async with aiohttp.ClientSession() as session:
        operator = OperatorAdminClient(session, stack.facts.operator_url)
        stats = await operator.stats()
        applied = (await operator.ledger()).apply_counts
        rgs = RgsAdminClient(session, stack.facts.rgs_url)

        async def every_webhook() -> bool:
            received = {d.body["data"]["refId"] for d in (await rgs.webhooks()).received if isinstance(d.body, dict)}
            return admitted_refs <= received

        await eventually(every_webhook, timeout_s=60, step_s=0.5, what="a webhook for every admitted transaction")
    # The operator's budget held: never more than 20 calls in any 60 s, never a 429 from it.
    assert stats.max_in_any_sixty_seconds <= RATE
    assert stats.rejected429 == 0
    # Applied once each, and only what the Hub completed.
    completed = {ref for ref, s in final.items() if s.status == "COMPLETED"}
    sent_as = {operator_id(stack.facts.hub_client_id, ref): ref for ref in admitted_refs}
    assert {sent_as[i]: n for i, n in applied.items() if i in sent_as} == dict.fromkeys(completed, 1)

    conn = await asyncpg.connect(stack.facts.database_url)
    try:
        open_rows = await conn.fetchval("SELECT count(*) FROM transactions WHERE status IN ('PENDING', 'PROCESSING')")
    finally:
        await conn.close()
    assert open_rows == 0
