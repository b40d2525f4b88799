"""Three ledger processes share one operator budget (a raised rate over a short window, set by settings).

With a backlog of BETs keeping all three busy: the grants never exceed the rate in any budget window, the
operator never sees more than the rate in any window of the budget's length, the budget is used to the full
while the backlog lasts, and WINs queued behind the BETs are served before any further BET.

The mock operator's own window is a fixed 60 s, so its limit is raised out of the way; the operator-side check
uses the times it recorded for each call it applied (every call is one apply here: no faults, no retries).

The operator-side bound rests on the budget's proof (hub_common.operator.budget, "Why W"): a call reaches the
operator within the safety margin of its grant. That delay is the machine's (event loops of four processes, the
COMMIT, the mock's own queue), not the budget's, and on a loaded machine it exceeds a quarter second. So it is
measured, and the operator's count is checked in windows of W + margin - delay: the configured window W whenever
the delay stayed within the margin, as it must in production (1 s margin).
"""

from __future__ import annotations

import logging
import statistics
from datetime import datetime

from hub_common.schemas import TransactionCommand, TxType
from mock_operator.models import PlayerSeed
from support.ledger_faults import (
    GRANT_LOG,
    Rig,
    Workload,
    admit_all,
    arrival_lags,
    group_members,
    ledger_group,
    ledger_service,
    max_in_any_window,
    partition_of,
    running,
    settled,
    slot_reuse_delays,
)
from support.ledger_it import command
from support.waits import eventually

log = logging.getLogger(__name__)

PROCESSES = 3
RATE = 24
# Long enough that the safety margin costs under 5 % of the nominal rate (8 / 8.25 s), as 1 s does of 60 s.
WINDOW_S = 8.0
MARGIN_S = 0.25
BET_PLAYERS = 40
BETS = 100
CREDITS_PER_PARTITION = 4
SEED_CENTS = 100_000


def bets() -> dict[str, list[TransactionCommand]]:
    by_player: dict[str, list[TransactionCommand]] = {f"bud-b{i}": [] for i in range(BET_PLAYERS)}
    for n in range(BETS):
        player = f"bud-b{n % BET_PLAYERS}"
        by_player[player].append(command(f"bud-bet-{n}", TxType.BET, player, 100, round_id=f"bud-r{n}"))
    return by_player


def credits(partitions: int) -> dict[str, list[TransactionCommand]]:
    """WINs for players of their own, spread so that every partition (hence every process) holds some."""
    by_player: dict[str, list[TransactionCommand]] = {}
    per_partition = dict.fromkeys(range(partitions), 0)
    n = 0
    while min(per_partition.values()) < CREDITS_PER_PARTITION:
        player = f"bud-c{n}"
        n += 1
        partition = partition_of(player, partitions)
        if per_partition[partition] >= CREDITS_PER_PARTITION:
            continue
        per_partition[partition] += 1
        by_player[player] = [command(f"bud-win-{player}", TxType.WIN, player, 100, round_id=f"bud-w{n}")]
    return by_player


async def test_three_ledger_processes_share_the_budget_to_the_full_and_serve_credits_first(rig: Rig) -> None:
    await rig.pool.execute(GRANT_LOG)
    backlog = Workload(bets(), SEED_CENTS)
    wins = Workload(credits(rig.kafka.partitions), SEED_CENTS)
    players = [*backlog.by_player, *wins.by_player]
    await rig.operator.seed_players(PlayerSeed(player_id=p, balance_cents=SEED_CENTS, currency="EUR") for p in players)
    settings = {
        "OPERATOR__RATE_PER_MINUTE": RATE,  # per window: the name keeps the production unit
        "OPERATOR__WINDOW_S": WINDOW_S,
        "OPERATOR__SAFETY_MARGIN_S": MARGIN_S,
    }
    ledgers = [
        ledger_service(
            f"ledger-{i}",
            rig.log_dir,
            kafka=rig.kafka,
            database_url=rig.ledger_database_url,
            operator_url=rig.operator_service.url,
            settings=settings,
        )
        for i in range(PROCESSES)
    ]
    total = len(backlog.commands) + len(wins.commands)

    async with running(*ledgers):
        # One partition per process before the backlog arrives: a rebalance mid-run would resend work.
        group = ledger_group(rig.kafka)

        async def stable() -> bool:
            return await group_members(rig.kafka, group) == ("Stable", PROCESSES)

        await eventually(stable, timeout_s=30, step_s=0.2)
        await admit_all(rig.pool, rig.producer, backlog)
        # The first window's grants are gone: the budget is exhausted and BETs wait in every process.
        await eventually(lambda: _grants_at_least(rig, RATE), timeout_s=20)
        await admit_all(rig.pool, rig.producer, wins)
        queued_at = await _credits_queued_everywhere(rig, wins)
        await eventually(lambda: settled(rig.pool, total), timeout_s=150, step_s=0.1)

    grants = [(r["granted_at"], r["priority"]) for r in await rig.pool.fetch("SELECT * FROM it_grant_log ORDER BY 1")]
    times = [t for t, _ in grants]
    stats = await rig.operator.stats()
    operator_times = [r.created_at for r in (await rig.operator.ledger()).transactions]
    statuses = {r["status"] for r in await rig.pool.fetch("SELECT status FROM transactions")}

    assert statuses == {"COMPLETED"}
    # Every call the operator saw was granted by the budget, once per transaction, and none was refused.
    assert len(grants) == stats.total_calls == len(operator_times) == total
    assert stats.rejected429 == 0

    # Never more than the rate in any budget window (window + safety margin), and the limit was reached.
    assert max_in_any_window(times, WINDOW_S + MARGIN_S) == RATE
    # The operator's view: no call came before its grant, and none of its windows holds more than a budget window
    # may, given how late calls arrived. When the lag is within the margin that window is at least WINDOW_S.
    lags = arrival_lags(times, operator_times)
    lag = max(lags)
    assert min(lags) >= 0, "a call reached the operator before the budget had granted it"
    assert lag < WINDOW_S, f"calls reached the operator up to {lag:.1f} s after their grants"
    operator_window = WINDOW_S + MARGIN_S - lag
    assert max_in_any_window(operator_times, operator_window) <= RATE

    # Used to the full while the backlog lasted: each slot is reused as soon as its grant leaves the window.
    delays = slot_reuse_delays(times, RATE)
    mean_delay = statistics.fmean(delays)
    usage = (WINDOW_S + MARGIN_S) / mean_delay
    log.warning(
        "shared budget: %s grants by %s processes, rate %s per %s s (+%s s margin); mean slot reuse %.3f s; "
        "budget use %.1f %% of capacity, %.1f %% of the nominal rate; grant-to-operator lag up to %.3f s "
        "(%s of %s calls beyond the margin), operator at most %s calls in any %.3f s",
        len(times),
        PROCESSES,
        RATE,
        WINDOW_S,
        MARGIN_S,
        mean_delay,
        100 * usage,
        100 * WINDOW_S / mean_delay,
        lag,
        sum(1 for x in lags if x > MARGIN_S),
        len(lags),
        max_in_any_window(operator_times, operator_window),
        operator_window,
    )
    # Of what the budget may grant: the rate per window + margin. The margin is what the proof spends on the
    # grant-to-operator delay, so against the bare rate the use is bounded by WINDOW_S / (WINDOW_S + MARGIN_S),
    # 97 % here and 98.4 % at the production default (60 s + 1 s).
    assert usage >= 0.95
    # And of the nominal rate itself, the measure (>= 95 % while there is backlog).
    assert WINDOW_S / mean_delay >= 0.95

    # Credits first: from the moment every process had its WINs waiting, no BET went before the last WIN.
    after = [priority for granted_at, priority in grants if granted_at > queued_at]
    assert after.count(0) == len(wins.commands), "some WINs were granted before they were all queued"
    last_credit = max(i for i, p in enumerate(after) if p == 0)
    assert after[: last_credit + 1] == [0] * len(wins.commands), f"BETs went before queued WINs: {after[:20]}"


async def _grants_at_least(rig: Rig, count: int) -> bool:
    return int(await rig.pool.fetchval("SELECT count(*) FROM it_grant_log")) >= count


async def _credits_queued_everywhere(rig: Rig, wins: Workload) -> datetime:
    """The database time at which every WIN was PROCESSING (waiting for budget) and every process had said so
    in its waiter row; fails if a WIN got through before that (the window would not have been full)."""
    refs = [cmd.ref_id for cmd in wins.commands]

    async def queued() -> bool:
        statuses = [
            r["status"] for r in await rig.pool.fetch("SELECT status FROM transactions WHERE ref_id = ANY($1)", refs)
        ]
        assert "COMPLETED" not in statuses, "a WIN was served before all were queued: the budget had room"
        urgent = await rig.pool.fetchval(
            "SELECT count(*) FROM operator_budget_waiters WHERE priority = 0 AND seen_at > now() - interval '2 s'"
        )
        return statuses.count("PROCESSING") == len(refs) and urgent == PROCESSES

    await eventually(queued, timeout_s=10, step_s=0.02)
    now: datetime = await rig.pool.fetchval("SELECT clock_timestamp()")
    return now
