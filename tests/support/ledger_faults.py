"""Fault tests of the ledger as real processes: launch/kill `python -m hub_ledger` and `python -m mock_operator`,
generate a funded mixed workload, and check the money invariants afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

import aiohttp
import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from hub_common.kafka import KafkaProducer
from hub_common.operator import cancel_id
from hub_common.schemas import TransactionCommand, TxStatus, TxType
from hub_common.settings import KafkaSettings
from hub_devstack.procs import free_port
from mock_operator.admin_client import OperatorAdminClient
from support.ledger_it import OPERATOR_SECRET, EventLog, command, insert_admitted, send

READY_TIMEOUT_S = 30.0
OPEN = ("PENDING", "PROCESSING")

# Test instrumentation: the budget deletes grants once they leave its window, so keep a copy of each.
# SECURITY DEFINER: the trigger fires in a ledger's session, whose role may not write the test's own table.
GRANT_LOG = """
CREATE TABLE it_grant_log (granted_at timestamptz NOT NULL, priority smallint NOT NULL);
CREATE FUNCTION it_log_grant() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    INSERT INTO it_grant_log VALUES (NEW.granted_at, NEW.priority);
    RETURN NEW;
END $$;
CREATE TRIGGER it_grant_log AFTER INSERT ON operator_budget_grants FOR EACH ROW EXECUTE FUNCTION it_log_grant();
"""


@dataclass
class Service:
    """One service as a child process of the test (its own, so killing it touches nothing else)."""

    name: str
    module: str
    env: dict[str, str]
    port: int
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    _log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, env=self.env, stdout=self._log, stderr=asyncio.subprocess.STDOUT
        )
        self.starts += 1
        await self._wait_ready()

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crash or an OOM kill."""
        process = self._running()
        process.send_signal(signal.SIGKILL)
        await process.wait()
        self._close_log()

    def pause(self) -> None:
        """SIGSTOP: the process freezes (as in a long GC pause, a frozen VM or a partitioned node) and resumes
        later as if nothing happened; its clocks, and its leases, run on meanwhile."""
        self._running().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._running().send_signal(signal.SIGCONT)

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            self._close_log()
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()
        self._close_log()

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _running(self) -> asyncio.subprocess.Process:
        assert self.process is not None and self.process.returncode is None, f"{self.name} is not running"
        return self.process

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    async def _wait_ready(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            for _ in range(int(READY_TIMEOUT_S / 0.1)):
                self._fail_if_exited()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(f"{self.url}/ready") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.name} not ready within {READY_TIMEOUT_S} s:\n{self.tail()}")

    def _fail_if_exited(self) -> None:
        process = self.process
        assert process is not None
        if process.returncode is not None:
            raise AssertionError(f"{self.name} exited with {process.returncode}:\n{self.tail()}")


def _base_env(drop_prefixes: Sequence[str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes))}


def mock_operator_service(log_dir: Path, *, hang_ms: int = 1_000) -> Service:
    port = free_port()
    env = _base_env(["MOCK_OPERATOR_"]) | {
        "MOCK_OPERATOR_PORT": str(port),
        "MOCK_OPERATOR_SECRET": OPERATOR_SECRET.get_secret_value(),
        # The mock's window is a fixed 60 s: it must never refuse, the Hub's budget is what is under test.
        "MOCK_OPERATOR_RATE_LIMIT_PER_MINUTE": "1000000",
        "MOCK_OPERATOR_HANG_MS": str(hang_ms),
        "MOCK_OPERATOR_TELEMETRY__LOG_LEVEL": os.environ.get("IT_LEDGER_LOG_LEVEL", "WARNING"),
    }
    return Service("mock-operator", "mock_operator", env, port, log_dir / "mock-operator.log")


def ledger_service(
    name: str,
    log_dir: Path,
    *,
    kafka: KafkaSettings,
    database_url: str,
    operator_url: str,
    settings: Mapping[str, str | float | int] | None = None,
) -> Service:
    """A ledger process; `settings` are LEDGER_* variables without the prefix (e.g. `OPERATOR__WINDOW_S`)."""
    port = free_port()
    values: dict[str, str | float | int] = {
        "PORT": port,
        # The group is per test: a group shared with other tests' ledgers would rebalance with them.
        "GROUP_ID": ledger_group(kafka),
        "KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "KAFKA__PARTITIONS": kafka.partitions,
        # The broker's minimum: a killed ledger's partitions move to its successor ~4 s sooner than by default.
        "KAFKA__SESSION_TIMEOUT_MS": 6_000,
        "KAFKA__HEARTBEAT_INTERVAL_MS": 1_000,
        "DATABASE__URL": database_url,
        "DATABASE__POOL_MAX_SIZE": 8,
        "OPERATOR__URL": operator_url,
        "OPERATOR__SECRET": OPERATOR_SECRET.get_secret_value(),
        "OPERATOR__RATE_PER_MINUTE": 1_000_000,
        "OPERATOR__TIMEOUT_S": 1.0,
        "OPERATOR__BUDGET_POLL_S": 0.1,
        "OPERATOR__BREAKER_RESET_S": 0.5,
        "COMMIT_INTERVAL_S": 0.2,
        "OUTBOX_POLL_S": 0.2,
        "RETRY_INITIAL_S": 0.05,
        "RETRY_MAX_S": 0.3,
        "SWEEP_INTERVAL_S": 0.5,
        "SWEEP_AGE_S": 5.0,
        # A killed ledger's transactions wait this long before another process takes them over.
        "LEASE_TTL_S": 4.0,
        "COMPENSATION_INTERVAL_S": 0.2,
        "TELEMETRY__LOG_LEVEL": os.environ.get("IT_LEDGER_LOG_LEVEL", "WARNING"),
    }
    values.update(settings or {})
    env = _base_env(["LEDGER_"]) | {f"LEDGER_{k}": str(v) for k, v in values.items()}
    return Service(name, "hub_ledger", env, port, log_dir / f"{name}.log")


def ledger_group(kafka: KafkaSettings) -> str:
    return f"{kafka.topic_prefix}hub-ledger"


async def group_members(kafka: KafkaSettings, group: str) -> tuple[str, int]:
    """(state, member count) of a consumer group, as the broker sees it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    (described,) = response.to_object()["groups"]
    return str(described["state"]), len(described["members"])


def partition_of(key: str, partitions: int) -> int:
    """The partition the producer's default partitioner picks for `key`."""
    return int((murmur2(key.encode()) & 0x7FFFFFFF) % partitions)


@asynccontextmanager
async def running(*services: Service) -> AsyncIterator[None]:
    """Start the services in order; stop every one that was started, whatever happens."""
    try:
        for service in services:
            await service.start()
        yield
    finally:
        for service in reversed(services):
            await service.stop()


@dataclass(frozen=True)
class Rig:
    """What a fault test works with: the database, a producer, the hub.transactions watch, the mock operator."""

    pool: asyncpg.Pool
    producer: KafkaProducer
    events: EventLog
    operator: OperatorAdminClient
    operator_service: Service
    database_url: str  # the owner's, for seeding and checks
    ledger_database_url: str  # the ledger role's, for ledger processes
    kafka: KafkaSettings
    log_dir: Path


# --- workload ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """Per-player command sequences (each in the order the RGS would send them) and the players' seeds."""

    by_player: dict[str, list[TransactionCommand]]
    seed_cents: int

    @property
    def commands(self) -> list[TransactionCommand]:
        return [cmd for cmds in self.by_player.values() for cmd in cmds]


def mixed_workload(prefix: str, *, players: int, total: int, seed_cents: int, rng: random.Random) -> Workload:
    """Rounds of BET then WIN (half), REFUND of the bet (a quarter) or nothing (an open round)."""
    by_player: dict[str, list[TransactionCommand]] = {f"{prefix}-p{i}": [] for i in range(players)}
    count = 0
    rounds = 0
    while count < total:
        player = f"{prefix}-p{rounds % players}"
        rounds += 1
        round_id = f"{prefix}-r{rounds}"
        bet_ref = f"{prefix}-bet-{rounds}"
        amount = rng.randint(1, 20) * 50
        cmds = by_player[player]
        cmds.append(command(bet_ref, TxType.BET, player, amount, round_id=round_id))
        draw = rng.random()
        if draw < 0.5:
            cmds.append(
                command(f"{prefix}-win-{rounds}", TxType.WIN, player, rng.randint(0, 40) * 50, round_id=round_id)
            )
        elif draw < 0.75:
            cmds.append(
                command(
                    f"{prefix}-ref-{rounds}", TxType.REFUND, player, amount, round_id=round_id, original_ref_id=bet_ref
                )
            )
        count = sum(len(c) for c in by_player.values())
    return Workload(by_player, seed_cents)


async def admit_all(pool: asyncpg.Pool, producer: KafkaProducer, workload: Workload, *, pause_s: float = 0.0) -> None:
    """Admit as the gateway does (row + key committed, command produced), each player's in order."""

    async def player(cmds: list[TransactionCommand]) -> None:
        for cmd in cmds:
            await insert_admitted(pool, cmd)
            await send(producer, cmd)
            if pause_s:
                await asyncio.sleep(pause_s)

    await asyncio.gather(*(player(cmds) for cmds in workload.by_player.values()))


async def open_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM transactions WHERE status IN ('PENDING', 'PROCESSING')"))


async def final_count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM transactions WHERE status NOT IN ('PENDING', 'PROCESSING')"))


async def settled(pool: asyncpg.Pool, total: int) -> bool:
    """Every admitted transaction final and every compensating refund confirmed."""
    done = await final_count(pool)
    pending = await pool.fetchval("SELECT count(*) FROM ledger_compensations WHERE status = 'PENDING'")
    return done == total and pending == 0


# --- invariants --------------------------------------------------------------------------------------------


@dataclass
class Summary:
    transactions: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failed_bets: int = 0
    cancels_applied: int = 0
    duplicate_events: int = 0
    operator_calls: int = 0
    operator_by_endpoint: dict[str, int] = field(default_factory=dict)
    operator_faults: dict[str, int] = field(default_factory=dict)


async def check_invariants(
    pool: asyncpg.Pool, operator: OperatorAdminClient, events: EventLog, workload: Workload
) -> Summary:
    """The money invariants after a run; raises AssertionError naming the first broken one."""
    rows = {r["ref_id"]: r for r in await pool.fetch("SELECT * FROM transactions")}
    expected_refs = {cmd.ref_id for cmd in workload.commands}
    assert set(rows) == expected_refs, f"rows missing: {sorted(expected_refs - set(rows))[:5]}"
    open_rows = [ref for ref, r in rows.items() if r["status"] in OPEN]
    assert not open_rows, f"transactions never final: {open_rows[:5]}"

    ledger = await operator.ledger()
    stats = await operator.stats()
    twice = {tid: n for tid, n in ledger.apply_counts.items() if n != 1}
    assert not twice, f"operator applied more than once: {twice}"
    applied = {r.transaction_id: r for r in ledger.transactions}

    expected_balance = {player: workload.seed_cents for player in workload.by_player}
    allowed_at_operator: set[str] = set()
    summary = Summary(transactions=len(rows), statuses=Counter(r["status"] for r in rows.values()))
    for ref, row in rows.items():
        status, tx_type, player = row["status"], row["type"], row["player_id"]
        if status == "COMPLETED":
            allowed_at_operator.add(row["operator_id"])
            if tx_type == "BET":
                expected_balance[player] -= row["amount_cents"]
            elif tx_type == "WIN":
                expected_balance[player] += row["amount_cents"]
            else:
                bet = rows.get(row["original_ref_id"])
                if bet is not None and bet["status"] == "COMPLETED":
                    expected_balance[player] += bet["amount_cents"]
            must_be_applied = tx_type != "REFUND" or (
                rows.get(row["original_ref_id"]) is not None and rows[row["original_ref_id"]]["status"] == "COMPLETED"
            )
            if must_be_applied:
                assert row["operator_id"] in applied, f"the Hub says {ref} COMPLETED but the operator never applied it"
        if status == "FAILED" and tx_type == "BET":
            # Possibly applied before its deadline passed; its cancelling refund reverses it then.
            summary.failed_bets += 1
            allowed_at_operator.update({row["operator_id"], cancel_id(row["operator_id"])})
            assert cancel_id(row["operator_id"]) in applied, f"FAILED bet {ref} has no confirmed cancelling refund"
            summary.cancels_applied += 1
        if status == "REJECTED" or (status == "FAILED" and tx_type != "BET"):
            assert row["operator_id"] not in applied, f"the operator applied {ref} but the Hub says {status}"
    stray = set(applied) - allowed_at_operator
    assert not stray, f"operator applied transactions the Hub does not account for: {sorted(stray)[:5]}"

    for player in workload.by_player:
        balance = (await operator.player(player)).balance_cents
        assert balance == expected_balance[player], (
            f"{player}: operator balance {balance} != seed + completed effects {expected_balance[player]}"
        )

    finals: dict[str, set[TxStatus]] = {}
    final_events = 0
    for _, event in events.events:
        if event.transaction.status.is_final:
            final_events += 1
            finals.setdefault(event.transaction.ref_id, set()).add(event.transaction.status)
    missing = expected_refs - set(finals)
    assert not missing, f"no final event on hub.transactions for {sorted(missing)[:5]}"
    conflicting = {ref: s for ref, s in finals.items() if len(s) > 1}
    assert not conflicting, f"different final statuses for one refId: {conflicting}"
    wrong = {ref: s for ref, s in finals.items() if next(iter(s)).value != rows[ref]["status"]}
    assert not wrong, f"final event disagrees with the row: {wrong}"
    summary.duplicate_events = final_events - len(finals)
    summary.operator_calls = stats.total_calls
    summary.operator_by_endpoint = stats.by_endpoint
    summary.operator_faults = stats.faults
    return summary


async def all_final_events(events: EventLog, refs: set[str]) -> bool:
    seen = {e.transaction.ref_id for _, e in events.events if e.transaction.status.is_final}
    return refs <= seen


# --- budget measures ----------------------------------------------------------------------------------------


def max_in_any_window(times: Sequence[datetime], window_s: float) -> int:
    """Most timestamps inside any half-open window of `window_s` seconds (two pointers over sorted times)."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while (t - ordered[start]).total_seconds() >= window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


def arrival_lags(grants: Sequence[datetime], arrivals: Sequence[datetime]) -> list[float]:
    """How long after the k-th grant the k-th call reached the operator (both in time order), for every k.

    The real grant-to-arrival delays need to know which grant each call used; this needs only the two logs. A
    call arrives after its grant, so the k earliest calls used k grants that all came before the k-th call: no
    lag is negative. No lag is larger than the largest real delay either (matching both sorted minimises the
    largest difference). And it is enough for the budget's proof: if every lag is at most d, the calls in any
    window [x, x + L) are the k-th to j-th, whose matched grants lie in [x - d, x + L), so an operator window of
    length L = W - d holds no more calls than a budget window W holds grants.
    """
    assert len(grants) == len(arrivals), "every call must have had a grant"
    return [(a - g).total_seconds() for g, a in zip(sorted(grants), sorted(arrivals), strict=True)]


def slot_reuse_delays(times: Sequence[datetime], rate: int) -> list[float]:
    """For each grant k >= rate, how long after grant k - rate it came: with a backlog and a budget used to the
    full, that is exactly the window (a slot is reused the moment it frees)."""
    ordered = sorted(times)
    return [(ordered[k] - ordered[k - rate]).total_seconds() for k in range(rate, len(ordered))]
