"""End to end: what an RGS waits for, from its POST to the final answer, through the whole running Hub.

Every service runs as a process (`hub_devstack.stack`: gateway, ledger, webhook dispatcher, mock operator, mock
RGS; not the reconciler, whose feed is not on the money path) on the real broker and database. The operator's
limit is lifted and the Hub's budget raised to match (`operator_rate_per_minute`), so what is measured is the
Hub's own latency, not the 60/min budget (that is `bench overload`). Signed BETs of many players (a spin waits
on each one) are sent at fixed arrival rates (open loop: a request leaves on its schedule whatever the earlier
ones are doing): one at a time, 100/s, 500/s, then higher rates until one is not sustained (an answer other
than 201, p99 over 1 s, or fewer answers per second than requests), which gives the highest sustained rate.

Reported per level: the POST-to-answer latency (p50/p90/p99/max, from the request leaving the client to its
answer read), the share answered 201 (final) vs 202 (outcome not in time), and when the dispatcher's webhook
reached the mock RGS after that answer. The per-hop breakdown comes from the services' trace spans
(`TELEMETRY_SPANS_DIR`, one trace in `SAMPLE_RATIO` sampled; `bench.spans` says what each hop is). Baseline in
the same run: the mock operator called directly (its POST, signed as the ledger signs it): the wallet's own
latency, which no Hub can go below. Where the CPU goes per request (each service, the client, and the broker plus
database as the rest of the machine) says what bounds the highest rate on a machine this size.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from tempfile import TemporaryDirectory

import aiohttp
import asyncpg
import orjson
from pydantic import SecretStr

from bench.report import Report, Target, cpu_s, machine_cpu_s, percentile
from bench.spans import HOPS, Span, correlation_of, hops, read_spans
from bench.stack import fresh_database, hub_stack, infra
from hub_common.operator import OperatorClient, OperatorSettings, OperatorTransactionRequest
from hub_common.schemas import TxType
from hub_common.signing import request_headers
from hub_devstack.stack import RunningStack
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import PlayerSeed
from mock_rgs.admin_client import RgsAdminClient

PATH = "/v1/transactions"
LIFTED_RATE = 1_000_000_000
PLAYERS = 2_000
# One trace in this many is recorded (all services follow the gateway's decision): enough for the hops' spread,
# while recording stays a small part of the CPU the stack spends.
SAMPLE_RATIO = 0.1
SEARCH_RATES = (750, 1000, 1250, 1500, 2000, 2500)
# A level is sustained when every answer is 201, p99 stays under this, and answers keep up with requests.
SUSTAINED_P99_MS = 1000.0
SUSTAINED_SHARE = 0.95

TARGET_SEQ_P50_MS = 15.0
TARGET_SEQ_P99_MS = 30.0
TARGET_500_P99_MS = 100.0


@dataclass(frozen=True)
class Shape:
    sequential: int
    seconds: float
    search_seconds: float


FULL = Shape(sequential=1000, seconds=10.0, search_seconds=6.0)
QUICK = Shape(sequential=200, seconds=3.0, search_seconds=3.0)


@dataclass(frozen=True)
class Sample:
    correlation_id: str
    ref_id: str
    status: int
    sent: float  # wall clock (time.time()) when the request left
    ms: float


@dataclass(frozen=True)
class Level:
    name: str
    offered_rps: float | None
    samples: list[Sample]
    seconds: float
    # CPU seconds per process name while the level ran and its work drained (see `CpuMeter`).
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def achieved_rps(self) -> float:
        return len(self.samples) / self.seconds if self.seconds else 0.0

    def share(self, status: int) -> float:
        return sum(1 for s in self.samples if s.status == status) / max(len(self.samples), 1)

    def ms(self) -> list[float]:
        return [s.ms for s in self.samples]

    def sustained(self) -> bool:
        if not self.samples or self.share(201) < 1.0:
            return False
        if percentile(self.ms(), 99) > SUSTAINED_P99_MS:
            return False
        return self.offered_rps is None or self.achieved_rps >= SUSTAINED_SHARE * self.offered_rps


class Requests:
    """Signed BET requests built before a level's clock starts (signatures stay valid for 300 s)."""

    def __init__(self, client_id: str, secret: SecretStr) -> None:
        self._client_id = client_id
        self._secret = secret
        self._run = uuid.uuid4().hex[:6]
        self._n = 0

    def build(self, level: str, count: int) -> list[tuple[str, str, bytes, dict[str, str]]]:
        built = []
        for _ in range(count):
            n = self._n
            self._n += 1
            ref = f"e2e-{self._run}-{n}"
            body = orjson.dumps(
                {
                    "refId": ref,
                    "type": "BET",
                    "playerId": player(n % PLAYERS),
                    "amountCents": 100,
                    "currency": "EUR",
                    "roundId": f"round-{ref}",
                    "gameId": "e2e-slot",
                }
            )
            correlation_id = f"e2e-{level}-{n}"
            headers = {
                "X-Client-Id": self._client_id,
                "Idempotency-Key": ref,
                "X-Correlation-ID": correlation_id,
                "Content-Type": "application/json",
                **request_headers(self._secret, "POST", PATH, body),
            }
            built.append((correlation_id, ref, body, headers))
        return built


class CpuMeter:
    """Where a level's CPU goes: each Hub process, this client, and the rest of the machine (the broker, the
    database and anything else running), read from /proc before and after the level (its work drained)."""

    CLIENT = "bench client"
    REST = "broker, database, rest"
    MACHINE = "machine (all cores)"

    def __init__(self, stack: RunningStack) -> None:
        self._pids = {svc.spec.name: svc.proc.pid for svc in stack.services}
        self._pids[self.CLIENT] = os.getpid()

    def read(self) -> dict[str, float]:
        now = {name: cpu_s(pid) for name, pid in self._pids.items()}
        now[self.MACHINE] = machine_cpu_s()
        return now

    def since(self, before: dict[str, float]) -> dict[str, float]:
        used = {name: value - before[name] for name, value in self.read().items()}
        used[self.REST] = used[self.MACHINE] - sum(v for k, v in used.items() if k != self.MACHINE)
        return used


def player(n: int) -> str:
    return f"e2e-player-{n:05d}"


async def _post(session: aiohttp.ClientSession, url: str, item: tuple[str, str, bytes, dict[str, str]]) -> Sample:
    correlation_id, ref, body, headers = item
    sent = time.time()
    started = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError):
        status = 0
    return Sample(correlation_id, ref, status, sent, (time.perf_counter() - started) * 1000)


async def sequential(
    session: aiohttp.ClientSession, url: str, work: Sequence[tuple[str, str, bytes, dict[str, str]]]
) -> Level:
    started = time.monotonic()
    samples = [await _post(session, url, item) for item in work]
    return Level("sequential", None, samples, time.monotonic() - started)


async def open_loop(
    session: aiohttp.ClientSession, url: str, work: Sequence[tuple[str, str, bytes, dict[str, str]]], rate: float
) -> Level:
    """Each request leaves at its scheduled time (start + i / rate), whether or not earlier ones were answered."""
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[Sample]] = []
    started = loop.time()
    for i, item in enumerate(work):
        delay = started + i / rate - loop.time()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_post(session, url, item)))
    samples = list(await asyncio.gather(*tasks))
    sent_for = len(work) / rate
    return Level(f"{rate:g}/s", rate, samples, max(loop.time() - started, sent_for))


async def _until_quiet(database_url: str, timeout_s: float = 120.0) -> None:
    """Wait until no transaction is open, so a level starts on an idle Hub."""
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            n = await conn.fetchval("SELECT count(*) FROM transactions WHERE status IN ('PENDING', 'PROCESSING')")
            if n == 0:
                return
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


async def _webhook_lag_ms(rgs: RgsAdminClient, samples: Sequence[Sample]) -> list[float]:
    """Per answered transaction: when its first webhook reached the mock RGS, after the POST's answer."""
    answered = {s.ref_id: s.sent + s.ms / 1000 for s in samples if s.status in (201, 202)}
    received = await rgs.webhooks()
    first: dict[str, float] = {}
    for delivery in received.received:
        body = delivery.body if isinstance(delivery.body, dict) else {}
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        ref = data.get("refId") if isinstance(data, dict) else None
        if ref in answered:
            at = delivery.received_at.timestamp()
            first[ref] = min(first.get(ref, at), at)
    return [(first[ref] - answered[ref]) * 1000 for ref in first]


async def _webhooks_settled(rgs: RgsAdminClient, expected: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await rgs.webhooks()).unique_events >= expected:
            return
        await asyncio.sleep(0.5)


@dataclass(frozen=True)
class Baseline:
    sequential_ms: list[float]
    rate_ms: list[float]
    rate: float


async def operator_baseline(stack: RunningStack, count: int, rate: float) -> Baseline:
    """The mock operator called directly, as the ledger calls it (signed POST, one client session)."""
    facts = stack.facts
    settings = OperatorSettings(
        url=facts.operator_url,
        client_id=facts.operator_client_id,
        secret=SecretStr(facts.operator_secret),
        rate_per_minute=LIFTED_RATE,
    )
    client = OperatorClient(settings, caller="bench")
    run = uuid.uuid4().hex[:6]

    def request(n: int) -> OperatorTransactionRequest:
        return OperatorTransactionRequest(
            transaction_id=f"baseline-{run}-{n}",
            player_id=player(n % PLAYERS),
            type=TxType.BET,
            amount_cents=1,
            currency="EUR",
        )

    async def one(n: int) -> float:
        started = time.perf_counter()
        await client.post_transaction(request(n), correlation_id=f"baseline-{n}")
        return (time.perf_counter() - started) * 1000

    try:
        seq = [await one(n) for n in range(count)]
        loop = asyncio.get_running_loop()
        tasks = []
        started = loop.time()
        for i in range(int(rate * 3)):
            delay = started + i / rate - loop.time()
            if delay > 0.0005:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(count + i)))
        at_rate = list(await asyncio.gather(*tasks))
    finally:
        await client.close()
    return Baseline(seq, at_rate, rate)


@dataclass
class Measured:
    levels: list[Level]
    webhook_ms: dict[str, list[float]]
    baseline: Baseline
    best_sustained: Level | None


async def run(quick: bool) -> Report:
    shape = QUICK if quick else FULL
    with TemporaryDirectory(prefix="hub-bench-e2e-spans-") as spans:
        spans_dir = Path(spans)
        async with (
            infra() as machine,
            fresh_database(machine, "bench_e2e") as database,
        ):
            extra_env = {
                "TELEMETRY_LOG_LEVEL": "WARNING",
                "TELEMETRY_SPANS_DIR": str(spans_dir),
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": str(SAMPLE_RATIO),
            }
            # The mock operator's limit lifted and the Hub's budget raised with it.
            async with (
                hub_stack(machine, database, "e2e", operator_rate_per_minute=LIFTED_RATE, extra_env=extra_env) as stack,
                aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=30)
                ) as session,
            ):
                measured = await _measure(session, stack, shape, quick=quick)
            # The services flushed their spans on the way out.
            traces = read_spans(spans_dir)
    return _report(shape, measured, traces)


async def _measure(session: aiohttp.ClientSession, stack: RunningStack, shape: Shape, *, quick: bool) -> Measured:
    facts = stack.facts
    operator = OperatorAdminClient(session, facts.operator_url)
    rgs = RgsAdminClient(session, facts.rgs_url)
    players = [player(n) for n in range(PLAYERS)]
    for i in range(0, PLAYERS, 500):
        await operator.seed_players(
            [PlayerSeed(player_id=p, balance_cents=10**12, currency="EUR") for p in players[i : i + 500]]
        )
    requests = Requests(facts.hub_client_id, SecretStr(facts.hub_client_secret))
    url = facts.hub_url.rstrip("/") + PATH
    # Warm-up (connections, prepared statements, consumer fetch sessions): not measured.
    await sequential(session, url, requests.build("warmup", 50))
    await _until_quiet(facts.database_url)
    levels: list[Level] = []
    webhook_ms: dict[str, list[float]] = {}

    meter = CpuMeter(stack)

    async def level(name: str, work_rate: float | None, count: int) -> Level:
        await rgs.reset()
        work = requests.build(name, count)
        cpu_before = meter.read()
        if work_rate is None:
            measured = await sequential(session, url, work)
        else:
            measured = await open_loop(session, url, work, work_rate)
        await _until_quiet(facts.database_url)
        await _webhooks_settled(rgs, sum(1 for s in measured.samples if s.status in (201, 202)))
        measured = replace(measured, cpu_s=meter.since(cpu_before))
        levels.append(measured)
        webhook_ms[measured.name] = await _webhook_lag_ms(rgs, measured.samples)
        print(
            f"  {measured.name}: {len(measured.samples)} requests, p50 {percentile(measured.ms(), 50):.1f} ms, "
            f"p99 {percentile(measured.ms(), 99):.1f} ms, 201 {100 * measured.share(201):.1f} %",
            flush=True,
        )
        return measured

    await level("sequential", None, shape.sequential)
    for rate in (100, 500):
        await level(f"{rate}/s", rate, int(rate * shape.seconds))
    best: Level | None = None
    for rate in SEARCH_RATES[: 2 if quick else None]:
        tried = await level(f"{rate}/s", rate, int(rate * shape.search_seconds))
        if not tried.sustained():
            break
        best = tried
    if best is None and levels[2].sustained():
        best = levels[2]
    baseline = await operator_baseline(stack, shape.sequential, 500)
    return Measured(levels, webhook_ms, baseline, best)


def _report(shape: Shape, m: Measured, traces: dict[str, list[Span]]) -> Report:
    report = Report("e2e")
    for lv in m.levels:
        ms = lv.ms()
        webhooks = m.webhook_ms.get(lv.name, [])
        report.rows.append(
            {
                "level": lv.name,
                "requests": len(lv.samples),
                "answers_per_s": lv.achieved_rps,
                "p50_ms": percentile(ms, 50),
                "p90_ms": percentile(ms, 90),
                "p99_ms": percentile(ms, 99),
                "max_ms": max(ms) if ms else float("nan"),
                "201_pct": 100 * lv.share(201),
                "202_pct": 100 * lv.share(202),
                "other": sum(1 for s in lv.samples if s.status not in (201, 202)),
                "webhook_p50_ms": percentile(webhooks, 50),
                "webhook_p99_ms": percentile(webhooks, 99),
            }
        )
    b = m.baseline
    report.rows.append(
        {
            "level": "operator alone, sequential",
            "requests": len(b.sequential_ms),
            "p50_ms": percentile(b.sequential_ms, 50),
            "p90_ms": percentile(b.sequential_ms, 90),
            "p99_ms": percentile(b.sequential_ms, 99),
            "max_ms": max(b.sequential_ms),
        }
    )
    report.rows.append(
        {
            "level": f"operator alone, {b.rate:g}/s",
            "requests": len(b.rate_ms),
            "p50_ms": percentile(b.rate_ms, 50),
            "p90_ms": percentile(b.rate_ms, 90),
            "p99_ms": percentile(b.rate_ms, 99),
            "max_ms": max(b.rate_ms),
        }
    )
    report.tables.append(("per hop (ms, p50 / p99 of the sampled traces)", _hop_rows(m.levels, traces)))
    report.tables.append(("CPU ms per request, by process (the level and its draining)", _cpu_rows(m.levels)))
    seq = m.levels[0]
    at_500 = next(lv for lv in m.levels if lv.name == "500/s")
    best = m.best_sustained
    report.notes += [
        f"BETs of {PLAYERS} players; operator limit lifted (budget {LIFTED_RATE}/min); sequential "
        f"{shape.sequential} requests, rates {shape.seconds:g} s each (search {shape.search_seconds:g} s)",
        "latency: from the request leaving the client to its answer read (the client runs on the same machine)",
        f"highest sustained rate (every answer 201, p99 <= {SUSTAINED_P99_MS:g} ms, answers >= "
        f"{100 * SUSTAINED_SHARE:g} % of requests): " + (f"{best.name}" if best else "none of the search rates"),
        f"hops from 1 trace in {1 / SAMPLE_RATIO:g} (bench.spans names each hop's spans); "
        "webhook: first delivery at the mock RGS after the POST's answer",
        "shared 2-core machine (broker, database, five services and the client on it): figures swing with load",
    ]
    report.targets += [
        Target("sequential p50", percentile(seq.ms(), 50), TARGET_SEQ_P50_MS, "max", " ms"),
        Target("sequential p99", percentile(seq.ms(), 99), TARGET_SEQ_P99_MS, "max", " ms"),
        Target("500/s p99", percentile(at_500.ms(), 99), TARGET_500_P99_MS, "max", " ms"),
        Target("500/s answers that are not 201", 100 * (1 - at_500.share(201)), 0, "max", " %"),
    ]
    return report


def _cpu_rows(levels: Sequence[Level]) -> list[dict[str, object]]:
    names = list(dict.fromkeys(name for lv in levels for name in lv.cpu_s))
    rows: list[dict[str, object]] = []
    for name in names:
        row: dict[str, object] = {"process": name}
        for lv in levels:
            row[lv.name] = 1000 * lv.cpu_s[name] / len(lv.samples) if lv.samples and name in lv.cpu_s else None
        rows.append(row)
    return rows


def _hop_rows(levels: Sequence[Level], traces: dict[str, list[Span]]) -> list[dict[str, object]]:
    by_level: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    level_of = {s.correlation_id: lv.name for lv in levels for s in lv.samples}
    for spans in traces.values():
        correlation = correlation_of(spans)
        name = level_of.get(correlation or "")
        if name is None:
            continue
        for hop, ms in hops(spans).items():
            by_level[name][hop].append(ms)
    rows: list[dict[str, object]] = []
    for hop in HOPS:
        row: dict[str, object] = {"hop": hop}
        for lv in levels:
            values = by_level[lv.name][hop]
            row[lv.name] = f"{percentile(values, 50):.1f} / {percentile(values, 99):.1f}" if values else "-"
        rows.append(row)
    row = {"hop": "traces"}
    for lv in levels:
        row[lv.name] = str(len(by_level[lv.name]["total (server span)"]))
    rows.append(row)
    return rows
