"""Ledger throughput: committed transactions/s end to end, next to a bare aiokafka consume->produce loop.

Setup (one run, one machine): real Kafka and PostgreSQL, a fresh migrated database, the mock operator as a
subprocess with its rate limit lifted, and the ledger as a subprocess with its operator budget lifted.
N admitted transactions are pre-loaded the way the gateway leaves them (PENDING rows, idempotency keys, audit
rows, and a `TransactionCommand` per row on hub.commands, key playerId) across many players, all BETs.
Then the ledger starts and the benchmark reads hub.transactions until every transaction's final event has
arrived: that rate is what a client sees.

Baseline: the same records copied to another topic, read by a plain aiokafka consumer that produces one record
per input (acks=all, idempotent, the Hub producer's linger) and commits: the client library's ceiling for a
consume->produce service on this machine.
"""

from __future__ import annotations

import asyncio
import os
import random
import shlex
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from bench.report import Report, Target
from bench.stack import Database, PeakRss, Service, fresh_database, infra, service, topic_prefix
from hub_common.envelope import wrap
from hub_common.kafka import COMMANDS, TRANSACTIONS, ensure_topics
from hub_common.operator import operator_id
from hub_common.schemas import TransactionCommand, TxType
from hub_common.settings import KafkaSettings
from hub_common.telemetry import kafka_headers
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import PlayerSeed

FULL_TRANSACTIONS = 10_000
QUICK_TRANSACTIONS = 1_500
TX_PER_PLAYER = 10
PARTITIONS = 6
CLIENT_ID = "rgs-bench"
OPERATOR_SECRET = "bench-operator-secret"  # a throwaway secret shared with the mock only
LIFTED_RATE = 1_000_000_000
FINAL = frozenset({"COMPLETED", "REJECTED", "FAILED"})
BARE_IN = "bench.bare.in"
BARE_OUT = "bench.bare.out"

TARGET_TPS = 2_000.0
TARGET_RATIO_PCT = 15.0
TARGET_RSS_MB = 150.0


def _unsampled_trace() -> Context:
    """The trace context a gateway's command carries when nothing records spans: a trace id, not sampled (the
    ledger then makes no span of its own, as in production; a command without one would start a trace)."""
    ids = SpanContext(
        trace_id=random.getrandbits(128) or 1,
        span_id=random.getrandbits(64) or 1,
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.DEFAULT),
    )
    return trace.set_span_in_context(NonRecordingSpan(ids))


@dataclass(frozen=True)
class Workload:
    commands: list[TransactionCommand]
    players: list[str]


@dataclass(frozen=True)
class LedgerRun:
    finals: int
    steady_tps: float
    from_ready_tps: float
    wall_s: float
    peak_rss_mb: float
    cpu_s: float
    operator_cpu_s: float
    operator_calls: dict[str, int]
    statuses: dict[str, int]


@dataclass(frozen=True)
class BareRun:
    records: int
    rate: float
    wall_s: float


def workload(n: int) -> Workload:
    """N BETs over N / TX_PER_PLAYER players, one round each (BETs only: the measurement is about throughput)."""
    admitted = datetime.now(UTC)
    players = [f"bench-player-{i:05d}" for i in range(max(1, n // TX_PER_PLAYER))]
    commands: list[TransactionCommand] = []
    for i in range(n):
        player = players[i % len(players)]
        seq = i // len(players)
        round_id = f"{player}-round-{seq}"
        ref = f"bench-{uuid.uuid4().hex}"
        commands.append(
            TransactionCommand(
                transaction_id=str(uuid.uuid4()),
                client_id=CLIENT_ID,
                idempotency_key=f"key-{ref}",
                request_hash=uuid.uuid4().hex,
                ref_id=ref,
                type=TxType.BET,
                player_id=player,
                amount_cents=100,
                currency="EUR",
                round_id=round_id,
                game_id="bench-game",
                admitted_at=admitted + timedelta(microseconds=i),
                operator_id=operator_id(CLIENT_ID, ref),
            )
        )
    return Workload(commands, players)


async def preload_rows(database_url: str, commands: list[TransactionCommand]) -> None:
    """What the gateway's admissions leave behind: PENDING rows, PROCESSING keys, one audit row each."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(
                "transactions",
                columns=[
                    "id",
                    "client_id",
                    "ref_id",
                    "type",
                    "player_id",
                    "amount_cents",
                    "currency",
                    "round_id",
                    "game_id",
                    "original_ref_id",
                    "round_closed",
                    "metadata",
                    "request_hash",
                    "status",
                    "correlation_id",
                    "created_at",
                    "updated_at",
                    "operator_id",
                ],
                records=[
                    (
                        uuid.UUID(c.transaction_id),
                        c.client_id,
                        c.ref_id,
                        c.type.value,
                        c.player_id,
                        c.amount_cents,
                        c.currency,
                        c.round_id,
                        c.game_id,
                        c.original_ref_id,
                        c.round_closed,
                        "{}",
                        c.request_hash,
                        "PENDING",
                        c.ref_id,
                        c.admitted_at,
                        c.admitted_at,
                        operator_id(c.client_id, c.ref_id),
                    )
                    for c in commands
                ],
            )
            await conn.copy_records_to_table(
                "idempotency_keys",
                columns=["id", "key", "scope", "request_hash", "status", "transaction_id", "expires_at"],
                records=[
                    (
                        uuid.uuid4(),
                        c.idempotency_key,
                        c.client_id,
                        c.request_hash,
                        "PROCESSING",
                        uuid.UUID(c.transaction_id),
                        c.admitted_at + timedelta(hours=24),
                    )
                    for c in commands
                ],
            )
            await conn.copy_records_to_table(
                "audit_log",
                columns=["entity", "entity_id", "action", "actor", "after", "reason"],
                records=[
                    (
                        "transaction",
                        c.transaction_id,
                        "ADMITTED",
                        f"gateway:{CLIENT_ID}",
                        '{"status": "PENDING"}',
                        "admitted by the gateway",
                    )
                    for c in commands
                ],
            )
    finally:
        await conn.close()


async def produce_commands(kafka: KafkaSettings, commands: list[TransactionCommand], topics: list[str]) -> None:
    """Each command to every topic in `topics` (full names), key playerId, in order per player."""
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=20
    )
    await producer.start()
    try:
        pending: list[asyncio.Future[Any]] = []
        for command in commands:
            envelope = wrap(command, correlation_id=command.ref_id)
            value = envelope.encode()
            headers = kafka_headers(envelope.correlation_id, context=_unsampled_trace())
            for topic in topics:
                # `send` only queues (in call order per partition); the acks are awaited in bulk.
                pending.append(await producer.send(topic, value, key=command.player_id.encode(), headers=list(headers)))
            if len(pending) >= 2_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _count_finals(
    kafka: KafkaSettings, n: int, ledger: Service, peak: PeakRss, timeout_s: float
) -> tuple[set[str], float | None, float | None, float]:
    """Read hub.transactions until N distinct transactions are final; (ids, first, last, ready) times."""
    consumer = AIOKafkaConsumer(
        kafka.topic(TRANSACTIONS),
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    finals: set[str] = set()
    first: float | None = None
    last: float | None = None
    started = time.monotonic()
    deadline = started + timeout_s
    try:
        while len(finals) < n and time.monotonic() < deadline:
            if ledger.proc.poll() is not None:
                raise RuntimeError(f"ledger exited with {ledger.proc.returncode}:\n{ledger.tail()}")
            fetched = await consumer.getmany(timeout_ms=200)
            peak.sample()
            for messages in fetched.values():
                for msg in messages:
                    tx = orjson.loads(msg.value)["payload"]["transaction"]
                    if tx["status"] in FINAL and tx["transactionId"] not in finals:
                        finals.add(tx["transactionId"])
                        now = time.monotonic()
                        first = first if first is not None else now
                        last = now
    finally:
        await consumer.stop()
    return finals, first, last, started


async def measure_ledger(
    kafka: KafkaSettings, database: Database, operator: Service, n: int, *, quick: bool
) -> LedgerRun:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DATABASE_URL": database.url("ledger"),
        "LEDGER_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "LEDGER_KAFKA__PARTITIONS": str(PARTITIONS),
        "LEDGER_GROUP_ID": f"hub-ledger-{uuid.uuid4().hex[:8]}",
        "LEDGER_OPERATOR__URL": operator.url,
        "LEDGER_OPERATOR__SECRET": OPERATOR_SECRET,
        "LEDGER_OPERATOR__RATE_PER_MINUTE": str(LIFTED_RATE),
        "TELEMETRY_LOG_LEVEL": "WARNING",
    }
    timeout_s = 90.0 if quick else max(180.0, n / 50)
    op_cpu_before = operator.cpu_s()
    # e.g. BENCH_LEDGER_PYTHON_ARGS="-m cProfile -o /tmp/ledger.prof": profile the ledger.
    python_args = shlex.split(os.environ.get("BENCH_LEDGER_PYTHON_ARGS", ""))
    async with service("ledger", "hub_ledger", env, port_env="LEDGER_PORT", python_args=python_args) as ledger:
        peak = PeakRss(ledger)
        finals, first, last, ready = await _count_finals(kafka, n, ledger, peak, timeout_s)
        peak.sample()
        cpu = ledger.cpu_s()
    op_cpu = operator.cpu_s() - op_cpu_before
    async with aiohttp.ClientSession() as session:
        operator_calls = (await OperatorAdminClient(session, operator.url).stats()).by_endpoint
    conn = await asyncpg.connect(database.owner_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM transactions GROUP BY status")
    finally:
        await conn.close()
    done = len(finals)
    steady = (done - 1) / (last - first) if first is not None and last is not None and last > first else 0.0
    wall = (last - ready) if last is not None else 0.0
    return LedgerRun(
        finals=done,
        steady_tps=steady,
        from_ready_tps=done / wall if wall > 0 else 0.0,
        wall_s=wall,
        peak_rss_mb=peak.peak_mb,
        cpu_s=cpu,
        operator_cpu_s=op_cpu,
        operator_calls=operator_calls,
        statuses={r["status"]: r["n"] for r in rows},
    )


async def bare_loop(kafka: KafkaSettings, n: int, timeout_s: float) -> BareRun:
    """Consume N records, produce one record per input (acks=all, idempotent), commit after each batch."""
    consumer = AIOKafkaConsumer(
        kafka.topic(BARE_IN),
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"bench-bare-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    await consumer.start()
    out = kafka.topic(BARE_OUT)
    seen = 0
    first: float | None = None
    deadline = time.monotonic() + timeout_s
    try:
        while seen < n and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=200)
            if not fetched:
                continue
            first = first if first is not None else time.monotonic()
            acks = []
            for messages in fetched.values():
                for msg in messages:
                    acks.append(await producer.send(out, msg.value, key=msg.key, headers=list(msg.headers or ())))
                    seen += 1
            await asyncio.gather(*acks)
            await consumer.commit()
        end = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    wall = end - first if first is not None else 0.0
    return BareRun(seen, seen / wall if wall > 0 else 0.0, wall)


async def _seed_players(operator: Service, players: list[str]) -> None:
    async with aiohttp.ClientSession() as session:
        admin = OperatorAdminClient(session, operator.url)
        for i in range(0, len(players), 500):
            await admin.seed_players(
                PlayerSeed(player_id=p, balance_cents=10**12, currency="EUR") for p in players[i : i + 500]
            )


async def run(quick: bool) -> Report:
    n = QUICK_TRANSACTIONS if quick else FULL_TRANSACTIONS
    work = workload(n)
    async with infra() as stack, fresh_database(stack, "bench_ledger") as database:
        kafka = KafkaSettings(
            bootstrap_servers=stack.kafka_bootstrap, topic_prefix=topic_prefix("ledger"), partitions=PARTITIONS
        )
        await ensure_topics(kafka, [COMMANDS, TRANSACTIONS, BARE_IN, BARE_OUT])
        operator_env = {
            "MOCK_OPERATOR_SECRET": OPERATOR_SECRET,
            "MOCK_OPERATOR_RATE_LIMIT_PER_MINUTE": str(LIFTED_RATE),
            "TELEMETRY_LOG_LEVEL": "WARNING",
        }
        async with service("mock-operator", "mock_operator", operator_env, port_env="MOCK_OPERATOR_PORT") as op:
            await _seed_players(op, work.players)
            await preload_rows(database.owner_url, work.commands)
            await produce_commands(kafka, work.commands, [kafka.topic(COMMANDS), kafka.topic(BARE_IN)])
            ledger = await measure_ledger(kafka, database, op, n, quick=quick)
        bare = await bare_loop(kafka, n, timeout_s=120.0)
    return _report(n, len(work.players), ledger, bare)


def _report(n: int, players: int, ledger: LedgerRun, bare: BareRun) -> Report:
    ratio = 100.0 * ledger.steady_tps / bare.rate if bare.rate else 0.0
    report = Report("ledger")
    report.rows.append(
        {
            "loop": "ledger (end to end)",
            "records": ledger.finals,
            "per_s": ledger.steady_tps,
            "per_s_from_ready": ledger.from_ready_tps,
            "wall_s": ledger.wall_s,
            "cpu_ms_per_tx": 1000 * ledger.cpu_s / max(ledger.finals, 1),
            "peak_rss_mb": ledger.peak_rss_mb,
        }
    )
    report.rows.append({"loop": "bare aiokafka", "records": bare.records, "per_s": bare.rate, "wall_s": bare.wall_s})
    report.notes.append(
        f"{n} transactions over {players} players (BETs), {PARTITIONS} partitions; final statuses {ledger.statuses}"
    )
    report.notes.append(
        "per_s: first to last final event on hub.transactions; per_s_from_ready includes the consumer group join"
    )
    report.notes.append(
        f"mock operator CPU during the ledger run: {ledger.operator_cpu_s:.1f} s "
        f"({1000 * ledger.operator_cpu_s / max(ledger.finals, 1):.2f} ms/tx)"
    )
    # One call per transaction is the floor; more means resends or lookups (timeouts, retries).
    report.notes.append(f"operator calls by endpoint: {ledger.operator_calls}")
    if ledger.finals < n:
        report.notes.append(f"only {ledger.finals} of {n} transactions reached a final event before the timeout")
    report.targets += [
        Target("committed tx/s", ledger.steady_tps, TARGET_TPS, unit=" tx/s"),
        Target("ledger / bare loop", ratio, TARGET_RATIO_PCT, unit="%"),
        Target("ledger peak RSS", ledger.peak_rss_mb, TARGET_RSS_MB, kind="max", unit=" MB"),
    ]
    return report
