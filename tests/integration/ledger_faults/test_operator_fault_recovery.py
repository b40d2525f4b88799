"""Operator faults while transactions flow through a ledger process: 5xx bursts, timeouts after the wallet
applied the call, forced 429 with Retry-After, an outage (errors, then dropped connections), then recovery.

Timings are shortened by settings: the BET deadline is a few seconds, so BETs caught by the outage end FAILED
and are cancelled with a compensating REFUND once the operator is back. The invariants are the crash test's:
nothing lost, nothing applied twice, every wallet equal to its seed plus the Hub's completed effects.
"""

from __future__ import annotations

import asyncio
import logging
import random

from hub_common.schemas import ErrorCode, TxType
from mock_operator.models import FaultConfig, PlayerSeed
from support.ledger_faults import (
    Rig,
    Workload,
    admit_all,
    all_final_events,
    check_invariants,
    ledger_service,
    mixed_workload,
    running,
    settled,
)
from support.waits import eventually

log = logging.getLogger(__name__)

TOTAL = 400
PLAYERS = 40
SEED_CENTS = 1_000_000
BET_DEADLINE_S = 3.0
FORCED_429 = 3

PHASES: list[tuple[str, FaultConfig, float]] = [
    ("healthy", FaultConfig(), 0.5),
    ("5xx burst", FaultConfig(error_rate=0.5, error_status=503), 1.5),
    ("500 burst", FaultConfig(error_rate=0.5, error_status=500), 1.0),
    ("timeout after apply", FaultConfig(timeout_after_apply_rate=0.3, hang_ms=1_500), 2.0),
    # Lasts until every forced 429 was answered: each one pauses the whole budget for its Retry-After.
    ("forced 429", FaultConfig(force429=FORCED_429, retry_after_s=1), 0.0),
    # The outage: longer than the BET deadline.
    ("outage: every call fails", FaultConfig(error_rate=1.0, error_status=503), 2.5),
    ("outage: connections dropped", FaultConfig(drop_rate=1.0), 2.5),
]


async def test_operator_faults_then_recovery_keep_the_money_right(rig: Rig) -> None:
    seed = random.randrange(1 << 30)
    workload = mixed_workload("fault", players=PLAYERS, total=TOTAL, seed_cents=SEED_CENTS, rng=random.Random(seed))
    total = len(workload.commands)
    await rig.operator.seed_players(
        PlayerSeed(player_id=p, balance_cents=SEED_CENTS, currency="EUR") for p in workload.by_player
    )
    ledger = ledger_service(
        "ledger",
        rig.log_dir,
        kafka=rig.kafka,
        database_url=rig.ledger_database_url,
        operator_url=rig.operator_service.url,
        settings={"BET_DEADLINE_S": BET_DEADLINE_S, "OPERATOR__TIMEOUT_S": 0.5},
    )
    flow_s = sum(duration for _, _, duration in PHASES) + FORCED_429  # each forced 429 pauses ~1 s
    per_player = max(len(cmds) for cmds in workload.by_player.values())

    async with running(ledger):
        admission = asyncio.create_task(admit_all(rig.pool, rig.producer, workload, pause_s=flow_s / per_player))
        for name, faults, duration in PHASES:
            log.info("phase: %s", name)
            await rig.operator.set_faults(faults)
            if faults.force429:
                await eventually(lambda: _forced_429s_answered(rig), timeout_s=20, step_s=0.05)
            await asyncio.sleep(duration)
        await rig.operator.clear_faults()
        await admission
        await eventually(lambda: settled(rig.pool, total), timeout_s=60, step_s=0.1)
        await eventually(lambda: all_final_events(rig.events, {c.ref_id for c in workload.commands}), timeout_s=20)

    summary = await check_invariants(rig.pool, rig.operator, rig.events, workload)
    log.warning(
        "fault test (seed %s): %s transactions, statuses %s, failed bets %s (cancels applied %s), "
        "operator calls %s by endpoint %s, faults injected %s, duplicate final events %s",
        seed,
        summary.transactions,
        dict(summary.statuses),
        summary.failed_bets,
        summary.cancels_applied,
        summary.operator_calls,
        summary.operator_by_endpoint,
        summary.operator_faults,
        summary.duplicate_events,
    )
    injected = summary.operator_faults
    assert injected.get("error", 0) > 0 and injected.get("timeoutAfterApply", 0) > 0 and injected.get("drop", 0) > 0
    assert injected.get("force429") == FORCED_429
    # Unknown outcomes were looked up rather than resent blindly.
    assert summary.operator_by_endpoint.get("GET /v2/transactions", 0) > 0
    # The outage outlasted the BET deadline: some BETs were cancelled, and the wallets are whole regardless.
    assert summary.failed_bets > 0
    # How many BETs the faults cost depends on how far the ledger lagged behind the phases (a loaded machine
    # fails more); what each transaction's outcome may be does not: everything else completed.
    assert await _outcomes_against_the_rules(rig, workload) == []


async def _outcomes_against_the_rules(rig: Rig, workload: Workload) -> list[str]:
    """Transactions whose final status the faults do not explain. Only a BET fails, and only once its deadline
    passed unresolved; a WIN is rejected exactly when its round's BET failed (its cancel is a refund); every
    other transaction completed: credits are retried past any fault (their deadline is a day)."""
    rows = {
        r["ref_id"]: r
        for r in await rig.pool.fetch(
            "SELECT ref_id, status, error_code, completed_at - created_at AS took FROM transactions"
        )
    }
    bet_of_round = {cmd.round_id: cmd.ref_id for cmd in workload.commands if cmd.type is TxType.BET}
    wrong: list[str] = []
    for cmd in workload.commands:
        row = rows[cmd.ref_id]
        outcome = (row["status"], row["error_code"])
        if cmd.type is TxType.BET:
            failed = outcome == ("FAILED", ErrorCode.OPERATOR_UNAVAILABLE.value)
            if failed and row["took"].total_seconds() < BET_DEADLINE_S:
                wrong.append(f"{cmd.ref_id}: FAILED {row['took'].total_seconds():.2f} s after admission")
            elif not failed and outcome != ("COMPLETED", None):
                wrong.append(f"{cmd.ref_id}: BET {outcome}")
            continue
        expected: tuple[str, str | None] = ("COMPLETED", None)
        if cmd.type is TxType.WIN and rows[bet_of_round[cmd.round_id]]["status"] == "FAILED":
            expected = ("REJECTED", ErrorCode.BET_ALREADY_REFUNDED.value)
        if outcome != expected:
            wrong.append(f"{cmd.ref_id}: {cmd.type.value} {outcome}, expected {expected}")
    return wrong


async def _forced_429s_answered(rig: Rig) -> bool:
    return (await rig.operator.stats()).faults.get("force429", 0) >= FORCED_429
