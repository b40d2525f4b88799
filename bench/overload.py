"""Overload: a burst of 600 BETs and 60 WINs over 50 players against the whole stack at the operator's 60/min.

What an RGS team feels when traffic exceeds the operator's budget (issue: "overload that respects the player's
time"): how fast every POST is answered, that every WIN is admitted, that no more BETs are admitted than their
useful life allows, and that everything admitted ends final (COMPLETED, or REJECTED BET_EXPIRED with nothing
debited). Every service runs as a process (`hub_devstack.stack`), on the real broker and database, with the
defaults of `make up` (outcome budget 5 s, BET useful life 30 s) except the reconciler, which is left out: its
feed would take budget slots before the burst and blur the bound checked here. The burst is sent once from 100
connections (`hub_devstack.burst`); no request is retried.

Before this work the same burst got 52 x 201 and 548 x 202, no 429, p50 20 s and p99 34 s (each 202 held its
connection for the whole outcome budget), and the last BET reached the operator about 16 minutes later.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
from pydantic import SecretStr

from bench.report import Report, Target, percentile
from bench.stack import Database, Infra, fresh_database, infra
from hub_devstack.burst import Answer, Final, burst_players, burst_requests, send_burst, states
from hub_devstack.kafka import delete_topics
from hub_devstack.procs import free_port
from hub_devstack.stack import RunningStack, run_stack
from hub_devstack.stack_config import SERVICES, StackConfig
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import PlayerSeed, StatsOut

RATE_PER_MINUTE = 60
USEFUL_LIFE_S = 30.0
CONCURRENCY = 100
FINAL_WITHIN_S = 300.0


@dataclass(frozen=True)
class Shape:
    bets: int
    wins: int
    players: int


FULL = Shape(bets=600, wins=60, players=50)
QUICK = Shape(bets=120, wins=12, players=10)


@asynccontextmanager
async def _stack(machine: Infra, database: Database) -> AsyncIterator[RunningStack]:
    services = tuple(s for s in SERVICES if s.name != "reconciler")
    prefix = f"bench-overload-{uuid.uuid4().hex[:8]}."
    with TemporaryDirectory(prefix="hub-bench-overload-") as state:
        config = StackConfig(
            state_dir=Path(state),
            ports={spec.name: free_port() for spec in SERVICES},
            kafka_bootstrap=machine.kafka_bootstrap,
            admin_database_url=machine.postgres_admin_url,
            db_roles=machine.db_roles,
            database_name=database.name,
            topic_prefix=prefix,
            operator_rate_per_minute=RATE_PER_MINUTE,
            extra_env={"GATEWAY_BET_USEFUL_LIFE_S": str(USEFUL_LIFE_S), "TELEMETRY_LOG_LEVEL": "WARNING"},
            ready_timeout_s=120,
            services=services,
        )
        launcher = run_stack(config)
        # The launcher is a blocking context manager (it waits for each service): keep it off the loop.
        running = await asyncio.to_thread(launcher.__enter__)
        try:
            yield running
        finally:
            await asyncio.to_thread(launcher.__exit__, None, None, None)
            await delete_topics(machine.kafka_bootstrap, prefix)


async def _gauge(session: aiohttp.ClientSession, hub_url: str, name: str) -> float:
    async with session.get(hub_url + "/metrics") as response:
        text = await response.text()
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else float("nan")


async def _until_final(database_url: str, refs: Sequence[str], timeout_s: float) -> tuple[dict[str, Final], float]:
    """The states once every transaction in `refs` is final (or the timeout passed), and how long that took."""
    started = time.monotonic()
    while True:
        found = await states(database_url, refs)
        done = all(s.status in ("COMPLETED", "REJECTED", "FAILED") for s in found.values())
        if done or time.monotonic() - started > timeout_s:
            return found, time.monotonic() - started
        await asyncio.sleep(0.5)


def _latency_rows(answers: Sequence[Answer]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for kind in ("BET", "WIN"):
        for status in sorted({a.status for a in answers if a.type == kind}):
            ms = [a.seconds * 1000 for a in answers if a.type == kind and a.status == status]
            rows.append(
                {
                    "answers": f"{kind} {status}",
                    "count": len(ms),
                    "p50_ms": percentile(ms, 50),
                    "p99_ms": percentile(ms, 99),
                    "max_ms": max(ms),
                }
            )
    everything = [a.seconds * 1000 for a in answers]
    rows.append(
        {
            "answers": "all",
            "count": len(everything),
            "p50_ms": percentile(everything, 50),
            "p99_ms": percentile(everything, 99),
            "max_ms": max(everything),
        }
    )
    return rows


def _outcome_rows(answers: Sequence[Answer], final: dict[str, Final]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for kind in ("BET", "WIN"):
        admitted = [a.ref_id for a in answers if a.type == kind and a.status in (201, 202)]
        outcomes: dict[str, int] = {}
        for ref in admitted:
            state = final.get(ref)
            label = "missing" if state is None else f"{state.status} {state.error_code or ''}".strip()
            outcomes[label] = outcomes.get(label, 0) + 1
        for label, count in sorted(outcomes.items()):
            rows.append({"answers": f"{kind} admitted -> {label}", "count": count})
    return rows


@dataclass(frozen=True)
class Measured:
    answers: list[Answer]
    final: dict[str, Final]
    # BET places the useful life allowed before the burst (the gateway's own gauge).
    capacity: float
    sent_s: float
    final_s: float
    stats: StatsOut


async def run(quick: bool) -> Report:
    shape = QUICK if quick else FULL
    async with (
        infra() as machine,
        fresh_database(machine, "bench_overload") as database,
        _stack(machine, database) as stack,
        aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=120), connector=aiohttp.TCPConnector(limit=CONCURRENCY)
        ) as session,
    ):
        measured = await _measure(session, stack, shape)
    return _report(shape, measured)


async def _measure(session: aiohttp.ClientSession, stack: RunningStack, shape: Shape) -> Measured:
    facts = stack.facts
    requests = burst_requests(uuid.uuid4().hex[:6], bets=shape.bets, wins=shape.wins, players=shape.players)
    operator = OperatorAdminClient(session, facts.operator_url)
    await operator.seed_players(
        [PlayerSeed(player_id=p, balance_cents=10**9, currency="EUR") for p in burst_players(requests)]
    )
    capacity = await _gauge(session, facts.hub_url, "gateway_bet_capacity")
    started = time.monotonic()
    secret = SecretStr(facts.hub_client_secret)
    answers = await send_burst(session, facts.hub_url, facts.hub_client_id, secret, requests, concurrency=CONCURRENCY)
    sent_s = time.monotonic() - started
    admitted = [a.ref_id for a in answers if a.status in (201, 202)]
    final, final_s = await _until_final(facts.database_url, admitted, FINAL_WITHIN_S)
    return Measured(answers, final, capacity, sent_s, final_s, await operator.stats())


def _report(shape: Shape, m: Measured) -> Report:
    report = Report("overload")
    answers, final, stats = m.answers, m.final, m.stats
    report.rows = _latency_rows(answers) + _outcome_rows(answers, final)
    bets = [a for a in answers if a.type == "BET"]
    wins = [a for a in answers if a.type == "WIN"]
    admitted_bets = sum(1 for a in bets if a.status in (201, 202))
    admitted = [a.ref_id for a in answers if a.status in (201, 202)]
    all_final = sum(1 for ref in admitted if ref in final and final[ref].status in ("COMPLETED", "REJECTED", "FAILED"))
    final_share = all_final / len(admitted) if admitted else 0.0
    p99_s = percentile([a.seconds for a in answers], 99)
    report.notes += [
        f"{shape.bets} BETs + {shape.wins} WINs over {shape.players} players from {CONCURRENCY} connections, "
        f"operator budget {RATE_PER_MINUTE}/min, BET useful life {USEFUL_LIFE_S:g} s, outcome budget 5 s",
        f"burst answered in {m.sent_s:.1f} s; every admitted transaction final {m.final_s:.1f} s after the burst",
        f"BET places the useful life allowed before the burst (gateway_bet_capacity): {m.capacity:g}; "
        f"BETs admitted: {admitted_bets}",
        f"operator: {stats.total_calls} calls, most in any 60 s {stats.max_in_any_sixty_seconds}, "
        f"429s {stats.rejected429}",
        "shared 2-core machine (broker, database, five services and the client on it): latencies are indicative",
    ]
    report.targets += [
        Target("POST answer p99", p99_s, 1.0, "max", " s"),
        Target("WINs admitted", sum(1 for a in wins if a.status in (201, 202)), len(wins), "min"),
        Target("BETs admitted over what the useful life allows", admitted_bets - m.capacity, 0, "max"),
        Target("admitted transactions final afterwards", final_share, 1.0, "min"),
        Target("most operator calls in any 60 s", stats.max_in_any_sixty_seconds, RATE_PER_MINUTE, "max"),
    ]
    return report
