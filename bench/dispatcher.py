"""Dispatcher throughput: signed webhook deliveries/s, next to a bare aiohttp POST loop, and with 30 % failing.

Setup (one run, one machine): real Kafka and PostgreSQL (hub_devstack providers), a fresh migrated database
per dispatcher run, a minimal aiohttp receiver answering 200 (this module run as a subprocess), and the
dispatcher as a subprocess (`python -m hub_dispatcher`). N final `TransactionEvent`s are produced to
hub.transactions before the dispatcher starts; the rate is the receiver's count of 2xx answers between its
first and last one.

- Baseline: a bare aiohttp client POSTing N bodies with the dispatcher's per-endpoint concurrency against the
  same receiver: the HTTP ceiling of this machine. Target: dispatcher >= 50 % of it.
- Failing: the receiver answers 500 for a deterministic 30 % of eventIds (every attempt), under the contract's
  default retry schedule (first retry 5 s, so retries run while healthy events still flow). Target: healthy
  deliveries/s >= 70 % of the all-healthy run (retries wait on their own topics; they do not block first
  attempts). `attempts_per_s` (2xx + 500 answers) shows the work rate apart from the failing share: the
  dispatcher is CPU-bound, so a failing attempt costs about what a delivery does (a little more: it also
  produces the retry record and logs), which caps this ratio near 70 % (7 deliveries per 10 attempts)
  unless the all-healthy run is limited by something other than the dispatcher's CPU.

`BENCH_PROFILE=<dir>` runs the dispatcher under pyinstrument (one session file per phase).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
import orjson
import uvloop
from aiohttp import web
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from bench.report import Report, Target
from bench.stack import Infra, PeakRss, Service, fresh_database, infra, service, topic_prefix
from hub_common.envelope import wrap
from hub_common.kafka import TRANSACTIONS, ensure_topics
from hub_common.schemas import Transaction, TransactionEvent, TxStatus, TxType
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_common.telemetry import kafka_headers
from hub_dispatcher.settings import DispatcherSettings, EndpointSettings, to_environment

FULL_EVENTS = 10_000
QUICK_EVENTS = 2_000
CONCURRENCY = 32
PARTITIONS = 6
FAIL_PCT = 30
CLIENT_ID = "rgs-bench"
SECRET = SecretStr("bench-webhook-secret")
RECEIVER_PORT_ENV = "BENCH_RECEIVER_PORT"
PROFILE_ENV = "BENCH_PROFILE"

TARGET_RATIO_PCT = 50.0
TARGET_HEALTHY_PCT = 70.0


def fails(event_id: str, pct: int) -> bool:
    """The receiver's (and the benchmark's) deterministic choice of failing events."""
    return int(hashlib.sha256(event_id.encode()).hexdigest()[:8], 16) % 100 < pct


# --- the receiver (run as `python -m bench.dispatcher`) ----------------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.fail_pct = 0
        self.reset()

    def reset(self) -> None:
        self.ok = 0
        self.failed = 0
        self.first_ok: float | None = None
        self.last_ok: float | None = None

    async def webhook(self, request: web.Request) -> web.Response:
        await request.read()
        event_id = request.headers.get("webhook-id", "")
        if self.fail_pct and fails(event_id, self.fail_pct):
            self.failed += 1
            return web.Response(status=500)
        now = time.time()
        self.ok += 1
        self.first_ok = self.first_ok or now
        self.last_ok = now
        return web.Response(status=200)

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {"ok": self.ok, "failed": self.failed, "firstOk": self.first_ok, "lastOk": self.last_ok}
        )

    async def configure(self, request: web.Request) -> web.Response:
        self.fail_pct = int((await request.json()).get("failPct", 0))
        self.reset()
        return web.json_response({"failPct": self.fail_pct})

    async def ready(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/webhooks", self.webhook)
        app.router.add_get("/stats", self.stats)
        app.router.add_post("/config", self.configure)
        app.router.add_get("/ready", self.ready)
        return app


def serve_receiver() -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as the services (hub_common.service)
    web.run_app(Receiver().app(), host="127.0.0.1", port=int(os.environ[RECEIVER_PORT_ENV]), access_log=None)


# --- measuring ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    delivered: int
    per_s: float
    wall_s: float
    peak_rss_mb: float = float("nan")
    cpu_ms_per_delivery: float = float("nan")
    cpu_us_per_attempt_steady: float = float("nan")
    failed_answers: int = 0
    attempts_per_s: float = float("nan")


def events(n: int) -> list[tuple[str, bytes, bytes]]:
    """(eventId, key, value) of N final TransactionEvents, as the ledger's outbox relay publishes them."""
    out = []
    now = datetime.now(UTC)
    for i in range(n):
        tx = Transaction(
            transaction_id=str(uuid.uuid4()),
            ref_id=f"bench-{uuid.uuid4().hex[:12]}",
            type=TxType.BET,
            player_id=f"p-{i % 500}",
            amount_cents=100 + i,
            currency="EUR",
            status=TxStatus.COMPLETED,
            created_at=now,
            updated_at=now,
            completed_at=now,
        )
        envelope = wrap(TransactionEvent(client_id=CLIENT_ID, transaction=tx), correlation_id=tx.ref_id)
        out.append((envelope.event_id, tx.ref_id.encode(), envelope.encode()))
    return out


async def produce(kafka: KafkaSettings, records: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=20
    )
    await producer.start()
    try:
        topic = kafka.topic(TRANSACTIONS)
        pending = []
        for _, key, value in records:
            pending.append(await producer.send(topic, value, key=key, headers=list(kafka_headers(key.decode()))))
            if len(pending) >= 2_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


async def _stats(http: aiohttp.ClientSession, receiver: Service) -> dict[str, float | None]:
    async with http.get(receiver.url + "/stats") as response:
        stats: dict[str, float | None] = await response.json()
        return stats


async def _configure(http: aiohttp.ClientSession, receiver: Service, fail_pct: int) -> None:
    async with http.post(receiver.url + "/config", json={"failPct": fail_pct}) as response:
        response.raise_for_status()


def _answers(stats: dict[str, float | None]) -> int:
    return int((stats["ok"] or 0) + (stats["failed"] or 0))


def _rate(stats: dict[str, float | None]) -> tuple[float, float]:
    ok, first, last = stats["ok"] or 0, stats["firstOk"], stats["lastOk"]
    if first is None or last is None or last <= first:
        return 0.0, float("nan")
    return (ok - 1) / (last - first), last - first


async def bare_loop(receiver: Service, n: int) -> Run:
    """N POSTs with `CONCURRENCY` workers on one keep-alive session: what aiohttp alone reaches here."""
    body = orjson.dumps({"eventId": str(uuid.uuid4()), "eventType": "transaction.completed", "data": {}})
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        await _configure(http, receiver, 0)
        queue = iter(range(n))

        async def worker() -> None:
            for i in queue:
                headers = {"Content-Type": "application/json", "webhook-id": f"bare-{i}"}
                async with http.post(receiver.url + "/webhooks", data=body, headers=headers) as response:
                    await response.read()

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        stats = await _stats(http, receiver)
    per_s, wall = _rate(stats)
    return Run(delivered=int(stats["ok"] or 0), per_s=per_s, wall_s=wall)


async def measure_dispatcher(stack: Infra, receiver: Service, n: int, *, fail_pct: int, quick: bool) -> Run:
    records = events(n)
    healthy = sum(1 for event_id, _, _ in records if not fails(event_id, fail_pct))
    async with fresh_database(stack, "bench_dispatcher") as database:
        kafka = KafkaSettings(
            bootstrap_servers=stack.kafka_bootstrap, topic_prefix=topic_prefix("dispatcher"), partitions=PARTITIONS
        )
        await ensure_topics(kafka, [TRANSACTIONS])
        await produce(kafka, records)
        settings = DispatcherSettings(
            kafka=kafka,
            database=DatabaseSettings(url=SecretStr(database.url("webhook-dispatcher")), pool_max_size=20),
            endpoints={CLIENT_ID: EndpointSettings(url=receiver.url + "/webhooks", secrets=[SECRET])},
            max_concurrency_per_endpoint=CONCURRENCY,
            # The breaker keeps its defaults: the failing run checks that they let healthy events through
            # (a steady 30 % failing must not open the circuit).
        )
        env = {k: v for k, v in to_environment(settings).items() if k != "DISPATCHER_PORT"}
        timeout_s = 60.0 if quick else max(180.0, n / 50)
        async with aiohttp.ClientSession() as http:
            await _configure(http, receiver, fail_pct)
            async with service(
                "dispatcher", "hub_dispatcher", env, port_env="DISPATCHER_PORT", python_args=_profiler(fail_pct)
            ) as dispatcher:
                peak = PeakRss(dispatcher)
                deadline = time.monotonic() + timeout_s
                stats = await _stats(http, receiver)
                # (cpu, answers) at the first sample that saw answers: start-up CPU is not per delivery.
                first: tuple[float, int] | None = None
                while (stats["ok"] or 0) < healthy and time.monotonic() < deadline:
                    if dispatcher.proc.poll() is not None:
                        raise RuntimeError(f"dispatcher exited {dispatcher.proc.returncode}:\n{dispatcher.tail()}")
                    await asyncio.sleep(0.2)
                    peak.sample()
                    stats = await _stats(http, receiver)
                    if first is None and _answers(stats):
                        first = (dispatcher.cpu_s(), _answers(stats))
                peak.sample()
                cpu = dispatcher.cpu_s()
                answers = _answers(stats)
    per_s, wall = _rate(stats)
    delivered = int(stats["ok"] or 0)
    failed = int(stats["failed"] or 0)
    return Run(
        attempts_per_s=(delivered + failed) / wall if math.isfinite(wall) and wall > 0 else float("nan"),
        delivered=delivered,
        per_s=per_s,
        wall_s=wall,
        peak_rss_mb=peak.peak_mb,
        cpu_ms_per_delivery=1000 * cpu / max(delivered, 1),
        cpu_us_per_attempt_steady=(
            1e6 * (cpu - first[0]) / (answers - first[1]) if first and answers > first[1] else float("nan")
        ),
        failed_answers=failed,
    )


def _profiler(fail_pct: int) -> tuple[str, ...]:
    """With `BENCH_PROFILE=<dir>`, the dispatcher runs under pyinstrument: a session file per phase in <dir>,
    rendered by `python -m pyinstrument --load <file> [-p flat]` (flat: self time per function)."""
    directory = os.environ.get(PROFILE_ENV)
    if not directory:
        return ()
    os.makedirs(directory, exist_ok=True)
    out = os.path.join(directory, f"dispatcher-fail{fail_pct}.pyisession")
    return ("-m", "pyinstrument", "--renderer", "pyisession", "--outfile", out)


async def run(quick: bool) -> Report:
    n = QUICK_EVENTS if quick else FULL_EVENTS
    async with infra() as stack:
        receiver_env: dict[str, str] = {}
        async with service("receiver", "bench.dispatcher", receiver_env, port_env=RECEIVER_PORT_ENV) as receiver:
            bare = await bare_loop(receiver, n)
            healthy = await measure_dispatcher(stack, receiver, n, fail_pct=0, quick=quick)
            failing = await measure_dispatcher(stack, receiver, n, fail_pct=FAIL_PCT, quick=quick)
    return _report(n, bare, healthy, failing)


def _report(n: int, bare: Run, healthy: Run, failing: Run) -> Report:
    ratio = 100.0 * healthy.per_s / bare.per_s if bare.per_s else 0.0
    kept = 100.0 * failing.per_s / healthy.per_s if healthy.per_s else 0.0
    report = Report("dispatcher")
    report.rows.append({"loop": "bare aiohttp POST", "delivered": bare.delivered, "per_s": bare.per_s})
    for name, measured in (("dispatcher, all healthy", healthy), (f"dispatcher, {FAIL_PCT}% failing", failing)):
        report.rows.append(
            {
                "loop": name,
                "delivered": measured.delivered,
                "per_s": measured.per_s,
                "wall_s": measured.wall_s,
                "500s": measured.failed_answers,
                "attempts_per_s": measured.attempts_per_s,
                "cpu_ms_per_delivery": measured.cpu_ms_per_delivery,
                "cpu_us_per_attempt_steady": measured.cpu_us_per_attempt_steady,
                "peak_rss_mb": measured.peak_rss_mb,
            }
        )
    report.notes.append(
        f"{n} events, concurrency {CONCURRENCY} (dispatcher per-endpoint limit = bare workers), {PARTITIONS} "
        f"partitions; failing run: default retry schedule, 500 for every attempt of those events"
    )
    report.notes.append("per_s: receiver's 2xx answers between its first and last one (healthy events only)")
    report.notes.append(
        "cpu_ms_per_delivery: the process's CPU (start-up included) / 2xx answers; cpu_us_per_attempt_steady: "
        "CPU / answers (2xx + 500) from the first sample that saw answers to the end"
    )
    peak = max(healthy.peak_rss_mb, failing.peak_rss_mb)
    report.targets += [
        Target("dispatcher / bare aiohttp", ratio, TARGET_RATIO_PCT, unit="%"),
        Target(f"healthy deliveries/s with {FAIL_PCT}% failing / all healthy", kept, TARGET_HEALTHY_PCT, unit="%"),
    ]
    report.notes.append(f"dispatcher peak RSS {peak:.1f} MB")
    return report


if __name__ == "__main__":
    serve_receiver()
