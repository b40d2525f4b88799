"""kill -9 of the ledger process at random moments while 1,000 mixed transactions flow; restarted each time.

Nothing may be lost or applied twice: every admitted transaction ends final, the operator applied each at most
once and everything the Hub calls COMPLETED, each wallet equals its seed plus the Hub's completed effects, and
hub.transactions never carries two different final statuses for one refId (repeats are allowed).
"""

from __future__ import annotations

import asyncio
import logging
import random
from functools import partial

from mock_operator.models import FaultConfig, PlayerSeed
from support.ledger_faults import (
    Rig,
    admit_all,
    all_final_events,
    check_invariants,
    final_count,
    ledger_service,
    mixed_workload,
    running,
    settled,
)
from support.waits import eventually

log = logging.getLogger(__name__)

TOTAL = 1_000
PLAYERS = 50
KILLS = 3
SEED_CENTS = 1_000_000


async def test_kill_9_at_random_moments_loses_nothing_and_applies_nothing_twice(rig: Rig) -> None:
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    workload = mixed_workload("crash", players=PLAYERS, total=TOTAL, seed_cents=SEED_CENTS, rng=rng)
    total = len(workload.commands)
    await rig.operator.seed_players(
        PlayerSeed(player_id=p, balance_cents=SEED_CENTS, currency="EUR") for p in workload.by_player
    )
    # A little operator latency widens the moments between "sent" and "recorded" that a kill should hit.
    await rig.operator.set_faults(FaultConfig(latency_ms=5))
    ledger = ledger_service(
        "ledger",
        rig.log_dir,
        kafka=rig.kafka,
        database_url=rig.ledger_database_url,
        operator_url=rig.operator_service.url,
    )
    # Kill points spread over the run (by progress, so each kill lands while transactions flow).
    targets = sorted(rng.sample(range(50, int(total * 0.85)), KILLS))
    killed_at: list[tuple[int, int]] = []

    async with running(ledger):
        admission = asyncio.create_task(admit_all(rig.pool, rig.producer, workload, pause_s=0.002))
        for target in targets:
            await eventually(partial(_reached, rig, target), timeout_s=60, step_s=0.01)
            await asyncio.sleep(rng.uniform(0, 0.05))
            in_flight = await rig.pool.fetchval("SELECT count(*) FROM transactions WHERE status = 'PROCESSING'")
            done = await final_count(rig.pool)
            await ledger.kill()
            killed_at.append((done, in_flight))
            await ledger.start()
        await admission
        await eventually(lambda: settled(rig.pool, total), timeout_s=60, step_s=0.1)
        await eventually(lambda: all_final_events(rig.events, {c.ref_id for c in workload.commands}), timeout_s=20)

    summary = await check_invariants(rig.pool, rig.operator, rig.events, workload)
    log.warning(
        "crash test (seed %s): %s transactions, %s kills at (final, processing) %s, statuses %s, operator calls %s, "
        "duplicate final events %s",
        seed,
        summary.transactions,
        len(killed_at),
        killed_at,
        dict(summary.statuses),
        summary.operator_by_endpoint,
        summary.duplicate_events,
    )
    assert len(killed_at) == KILLS and ledger.starts == KILLS + 1
    assert summary.statuses["COMPLETED"] > 0.9 * total


async def _reached(rig: Rig, target: int) -> bool:
    return await final_count(rig.pool) >= target
