"""Gateway admission throughput against a bare aiohttp app, both as subprocesses on the same machine.

The gateway runs as `python -m hub_gateway` with real Kafka and PostgreSQL, GATEWAY_OUTCOME_BUDGET_S=0 (an
admitted command answers 202 at once: this measures verify + validate + idempotent admit + acked produce, not
the ledger) and no backlog bound. The baseline is an aiohttp app that reads the body and answers 201. One
client session drives signed POSTs, each with its own refId and key, pre-built before the clock starts.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import orjson
from pydantic import SecretStr

from bench.report import Report, Target, percentile, rss_mb
from hub_common.db import migrate
from hub_common.signing import request_headers
from hub_devstack.kafka import provide_kafka
from hub_devstack.postgres import database_url_for, provide_postgres
from hub_devstack.procs import free_port, log_tail, stop_process
from hub_devstack.stack_config import BY_NAME, DemoSecrets, StackConfig, service_env

LEVELS = (1, 8, 32, 64)
ACCEPTED = frozenset({201, 202})
PATH = "/v1/transactions"

BASELINE_APP = """
import sys
from aiohttp import web

async def created(request):
    await request.read()
    return web.json_response({"status": "COMPLETED"}, status=201)

app = web.Application()
app.router.add_post("/v1/transactions", created)
app.router.add_get("/ready", lambda _: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


@dataclass
class Level:
    concurrency: int
    accepted: int
    failed: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path, port: int) -> Iterator[Server]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield Server(proc, f"http://127.0.0.1:{port}", log)
    finally:
        stop_process(proc, grace_s=10)


async def _wait_ready(session: aiohttp.ClientSession, server: Server, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.url} exited early:\n{log_tail(server.log)}")
        try:
            async with session.get(server.url + "/ready") as response:
                if response.status == 200:
                    return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{server.url} was not ready within {timeout_s:.0f} s:\n{log_tail(server.log)}")


@asynccontextmanager
async def _database(admin_url: str) -> AsyncIterator[str]:
    name = f"bench_gateway_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        url = database_url_for(admin_url, name)
        await migrate(url)
        yield url
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


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
    session: aiohttp.ClientSession, url: str, work: list[tuple[bytes, dict[str, str]]], concurrency: int, seconds: float
) -> Level:
    items = iter(work)
    latencies: list[float] = []
    failed = 0
    started = time.monotonic()
    end = started + seconds

    async def worker() -> None:
        nonlocal failed
        for body, headers in items:
            if time.monotonic() >= end:
                return
            t0 = time.perf_counter()
            async with session.post(url + PATH, data=body, headers=headers) as response:
                await response.read()
                if response.status in ACCEPTED:
                    latencies.append((time.perf_counter() - t0) * 1000)
                else:
                    failed += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Level(concurrency, len(latencies), failed, time.monotonic() - started, latencies)


async def _measure(
    session: aiohttp.ClientSession, url: str, secret: SecretStr, client_id: str, seconds: float
) -> list[Level]:
    levels = []
    for concurrency in LEVELS:
        # Generous: well above what either server accepts per second here; a level that runs out just ends early.
        work = _requests(client_id, secret, uuid.uuid4().hex[:8], int(6000 * seconds))
        levels.append(await _drive(session, url, work, concurrency, seconds))
    return levels


async def run(quick: bool) -> Report:
    seconds = 3.0 if quick else 10.0
    report = Report("gateway")
    secrets = DemoSecrets.generate("bench-rgs")
    secret = SecretStr(secrets.client_secret)
    async with AsyncExitStack() as stack:
        kafka_cm, pg_cm = provide_kafka(), provide_postgres()
        # Blocking providers (they may start a broker or a cluster): kept off the loop.
        bootstrap = await asyncio.to_thread(kafka_cm.__enter__)
        stack.push_async_callback(asyncio.to_thread, kafka_cm.__exit__, None, None, None)
        admin_url = await asyncio.to_thread(pg_cm.__enter__)
        stack.push_async_callback(asyncio.to_thread, pg_cm.__exit__, None, None, None)
        database_url = await stack.enter_async_context(_database(admin_url))

        state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-gateway-")))
        gateway_port, baseline_port = free_port(), free_port()
        config = StackConfig(
            state_dir=state,
            ports={**StackConfig(state_dir=state).ports, "gateway": gateway_port},
            secrets=secrets,
            topic_prefix=f"bench-gw-{uuid.uuid4().hex[:8]}.",
            extra_env={
                "GATEWAY_OUTCOME_BUDGET_S": "0",
                "GATEWAY_MAX_BACKLOG": "0",
                "TELEMETRY_LOG_LEVEL": "WARNING",
            },
        )
        env = {
            **os.environ,
            **service_env(BY_NAME["gateway"], config, kafka_bootstrap=bootstrap, database_url=database_url),
        }
        gateway = stack.enter_context(
            _process([sys.executable, "-m", "hub_gateway"], env, state / "gateway.log", gateway_port)
        )
        baseline = stack.enter_context(
            _process(
                [sys.executable, "-c", BASELINE_APP, str(baseline_port)],
                dict(os.environ),
                state / "baseline.log",
                baseline_port,
            )
        )
        connector = aiohttp.TCPConnector(limit=max(LEVELS))
        session = await stack.enter_async_context(
            aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))
        )
        await _wait_ready(session, gateway)
        await _wait_ready(session, baseline)

        hub = await _measure(session, gateway.url, secret, secrets.client_id, seconds)
        bare = await _measure(session, baseline.url, secret, secrets.client_id, seconds)
        peak_rss = rss_mb(gateway.proc.pid)[1]

    for h, b in zip(hub, bare, strict=True):
        report.rows.append(
            {
                "concurrency": h.concurrency,
                "gateway_rps": h.rps,
                "gateway_p50_ms": percentile(h.latencies_ms, 50),
                "gateway_p99_ms": percentile(h.latencies_ms, 99),
                "gateway_failed": h.failed,
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
    report.targets.append(Target("throughput ratio at the best level", ratio * 100, 50, "min", "%"))
    report.targets.append(Target("gateway peak RSS (VmHWM)", peak_rss, 150, "max", " MB"))
    return report
