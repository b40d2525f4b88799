"""Gateway admission throughput against a bare aiohttp app, both as subprocesses on the same machine.

The gateway runs as `python -m hub_gateway` with real Kafka and PostgreSQL, GATEWAY_OUTCOME_BUDGET_S=0 (an
admitted command answers 202 at once: this measures verify + validate + idempotent admit + acked produce, not
the ledger) and a lifted operator budget (admission control never refuses). The baseline is this module run as
`python -m bench.gateway`: an aiohttp app that reads the body and answers 201. One client session drives signed
POSTs, each with its own refId and key, pre-built before the clock starts.

`gateway_cpu_pct` is the gateway process's CPU use during a level (100 = one core): at 100 the gateway itself is
the bound; below it, the machine (database, broker, the client) is. With `BENCH_PROFILE=<dir>` the gateway runs
under pyinstrument and leaves `gateway.pstats` in <dir> (`python -m pstats`: self time per function).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import uvloop
from aiohttp import web
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from bench.report import Report, Target, percentile
from bench.stack import PeakRss, Service, fresh_database, infra, service, topic_prefix
from hub_common.signing import request_headers
from hub_devstack.stack_config import BY_NAME, DemoSecrets, StackConfig, service_env

LEVELS = (1, 8, 32, 64)
ACCEPTED = frozenset({201, 202})
PATH = "/v1/transactions"
BARE_PORT_ENV = "BENCH_BARE_PORT"
PROFILE_ENV = "BENCH_PROFILE"
# Pre-built requests per second of a level: above what either server accepts here; a level that runs out
# just ends early (its rate is accepted / elapsed).
REQUESTS_PER_S = 12_000


# --- the baseline (run as `python -m bench.gateway`) -------------------------------------------------------------


async def _created(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": "COMPLETED"}, status=201)


async def _ready(_: web.Request) -> web.Response:
    return web.Response(text="ok")


def serve_bare() -> None:
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as the services (hub_common.service)
    app = web.Application()
    app.router.add_post(PATH, _created)
    app.router.add_get("/ready", _ready)
    web.run_app(app, host="127.0.0.1", port=int(os.environ[BARE_PORT_ENV]), print=None, access_log=None)


# --- measuring ---------------------------------------------------------------------------------------------------


@dataclass
class Level:
    concurrency: int
    accepted: int
    failed: int
    seconds: float
    latencies_ms: list[float]
    cpu_s: float = float("nan")

    @property
    def rps(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu_s / self.seconds if self.seconds else float("nan")


def _requests(client_id: str, secret: SecretStr, run: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    """Signed bodies built before timing starts (signatures stay valid for 300 s)."""
    built = []
    for i in range(count):
        body = orjson.dumps(
            {"refId": f"{run}-{i}", "type": "BET", "playerId": f"p-{i % 97}", "amountCents": 100, "currency": "EUR"}
        )
        headers = {
            "X-Client-Id": client_id,
            "Idempotency-Key": f"{run}-{i}",
            "Content-Type": "application/json",
            **request_headers(secret, "POST", PATH, body),
        }
        built.append((body, headers))
    return built


async def _drive(
    session: aiohttp.ClientSession, svc: Service, work: list[tuple[bytes, dict[str, str]]], concurrency: int, s: float
) -> Level:
    items = iter(work)
    latencies: list[float] = []
    failed = 0
    cpu_before = svc.cpu_s()
    started = time.monotonic()
    end = started + s

    async def worker() -> None:
        nonlocal failed
        for body, headers in items:
            if time.monotonic() >= end:
                return
            t0 = time.perf_counter()
            async with session.post(svc.url + PATH, data=body, headers=headers) as response:
                await response.read()
                if response.status in ACCEPTED:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return Level(concurrency, len(latencies), failed, elapsed, latencies, svc.cpu_s() - cpu_before)


async def _measure(session: aiohttp.ClientSession, svc: Service, secrets: DemoSecrets, seconds: float) -> list[Level]:
    secret = SecretStr(secrets.client_secret)
    levels = []
    for concurrency in LEVELS:
        work = _requests(secrets.client_id, secret, uuid.uuid4().hex[:8], int(REQUESTS_PER_S * seconds))
        levels.append(await _drive(session, svc, work, concurrency, seconds))
    return levels


def _profiler() -> tuple[str, ...]:
    directory = os.environ.get(PROFILE_ENV)
    if not directory:
        return ()
    os.makedirs(directory, exist_ok=True)
    return ("-m", "pyinstrument", "--renderer", "pstats", "--outfile", os.path.join(directory, "gateway.pstats"))


@asynccontextmanager
async def _own_topics(bootstrap: str, prefix: str) -> AsyncIterator[None]:
    """Delete the run's topics afterwards: on a shared broker, every run's partitions would otherwise stay
    (each holds open files; a broker that runs out of them shuts down)."""
    try:
        yield
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if mine:
                await admin.delete_topics(mine)
        except KafkaError as exc:
            print(f"note: could not delete the benchmark's topics ({prefix}*): {exc!r}")
        finally:
            await admin.close()


async def run(quick: bool) -> Report:
    seconds = 3.0 if quick else 10.0
    secrets = DemoSecrets.generate("bench-rgs")
    prefix = topic_prefix("gw")
    async with (
        infra() as stack,
        fresh_database(stack, "bench_gateway") as database,
        _own_topics(stack.kafka_bootstrap, prefix),
    ):
        config = StackConfig(
            state_dir=Path("."),  # unused by the gateway's environment
            secrets=secrets,
            topic_prefix=prefix,
            extra_env={
                "GATEWAY_OUTCOME_BUDGET_S": "0",
                # No ledger drains the queue: a lifted operator budget keeps every BET within its useful life.
                "GATEWAY_OPERATOR__RATE_PER_MINUTE": str(10**9),
                "TELEMETRY_LOG_LEVEL": "WARNING",
            },
        )
        env = service_env(
            BY_NAME["gateway"], config, kafka_bootstrap=stack.kafka_bootstrap, database_url=database.url("gateway")
        )
        async with (
            service("gateway", "hub_gateway", env, port_env="GATEWAY_PORT", python_args=_profiler()) as gateway,
            service("bare", "bench.gateway", {}, port_env=BARE_PORT_ENV) as bare_app,
            aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=max(LEVELS)), timeout=aiohttp.ClientTimeout(total=30)
            ) as session,
        ):
            peak = PeakRss(gateway)
            hub = await _measure(session, gateway, secrets, seconds)
            peak.sample()
            bare = await _measure(session, bare_app, secrets, seconds)
    return _report(hub, bare, peak.peak_mb, seconds)


def _report(hub: list[Level], bare: list[Level], peak_rss_mb: float, seconds: float) -> Report:
    report = Report("gateway")
    for h, b in zip(hub, bare, strict=True):
        report.rows.append(
            {
                "concurrency": h.concurrency,
                "gateway_rps": h.rps,
                "gateway_p50_ms": percentile(h.latencies_ms, 50),
                "gateway_p99_ms": percentile(h.latencies_ms, 99),
                "gateway_failed": h.failed,
                "gateway_cpu_pct": h.cpu_pct,
                "bare_rps": b.rps,
                "bare_p50_ms": percentile(b.latencies_ms, 50),
                "bare_p99_ms": percentile(b.latencies_ms, 99),
            }
        )
    best = max(range(len(hub)), key=lambda i: hub[i].rps)
    ratio = hub[best].rps / bare[best].rps if bare[best].rps else 0.0
    report.notes.append(
        f"best gateway level: concurrency {hub[best].concurrency}, {hub[best].rps:.0f} accepted/s "
        f"vs bare {bare[best].rps:.0f}/s; {seconds:.0f} s per level"
    )
    report.targets.append(Target("throughput ratio at the best level", ratio * 100, 40, "min", "%"))
    report.targets.append(Target("gateway peak RSS (VmHWM)", peak_rss_mb, 150, "max", " MB"))
    return report


if __name__ == "__main__":
    serve_bare()
