"""Shared pieces for benchmarks: real infrastructure, a fresh database, services as subprocesses.

Everything here is a context manager that cleans up after itself, so a failing benchmark leaves no process,
database or broker behind. Services run as real subprocesses (`python -m <module>`) so their RSS and CPU are
their own, measured from /proc.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from bench.report import cpu_s, rss_mb
from hub_common.errors import HubError
from hub_devstack.kafka import delete_topics, provide_kafka
from hub_devstack.postgres import provide_postgres
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.procs import free_port, log_tail, terminate_child
from hub_devstack.stack import RunningStack, run_stack
from hub_devstack.stack_config import SERVICES, StackConfig


class BenchSetupError(HubError):
    """A piece of the benchmark's stack did not come up."""


@dataclass(frozen=True)
class Infra:
    kafka_bootstrap: str
    postgres_admin_url: str
    db_roles: DatabaseRoles


@dataclass(frozen=True)
class Database:
    """A benchmark's own database: the owner's URL to seed and check, each service's role URL to run it."""

    name: str
    owner_url: str
    roles: DatabaseRoles

    def url(self, component: str) -> str:
        return self.roles.component_url(component, self.name)


@asynccontextmanager
async def infra() -> AsyncIterator[Infra]:
    """A ready Kafka broker and PostgreSQL cluster (the env's when set, else started here and stopped after)."""
    async with AsyncExitStack() as stack:
        # The providers are blocking context managers (they may start a broker): keep them off the loop.
        kafka_cm = provide_kafka()
        bootstrap = await asyncio.to_thread(kafka_cm.__enter__)
        stack.push_async_callback(asyncio.to_thread, kafka_cm.__exit__, None, None, None)
        pg_cm = provide_postgres()
        admin_url = await asyncio.to_thread(pg_cm.__enter__)
        stack.push_async_callback(asyncio.to_thread, pg_cm.__exit__, None, None, None)
        roles = DatabaseRoles.generate(admin_url)
        await roles.provision()
        yield Infra(bootstrap, admin_url, roles)


@asynccontextmanager
async def fresh_database(stack: Infra, prefix: str = "bench") -> AsyncIterator[Database]:
    """A new, migrated database owned by the owner role; dropped on exit."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        owner_url = await stack.db_roles.create_database(name)
        yield Database(name, owner_url, stack.db_roles)
    finally:
        await stack.db_roles.drop_database(name)


@asynccontextmanager
async def hub_stack(
    machine: Infra, database: Database, name: str, *, operator_rate_per_minute: int, extra_env: Mapping[str, str]
) -> AsyncIterator[RunningStack]:
    """Every service but the reconciler as processes (`hub_devstack.stack`) on the run's own topics and database.

    The reconciler is left out: its feed is not on the money path, and its budget slots would blur what is
    measured."""
    services = tuple(s for s in SERVICES if s.name != "reconciler")
    prefix = topic_prefix(name)
    with tempfile.TemporaryDirectory(prefix=f"hub-bench-{name}-") as state:
        config = StackConfig(
            state_dir=Path(state),
            ports={spec.name: free_port() for spec in SERVICES},
            kafka_bootstrap=machine.kafka_bootstrap,
            admin_database_url=machine.postgres_admin_url,
            db_roles=machine.db_roles,
            database_name=database.name,
            topic_prefix=prefix,
            operator_rate_per_minute=operator_rate_per_minute,
            extra_env=extra_env,
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


def topic_prefix(name: str) -> str:
    """A topic prefix no other run shares."""
    return f"bench-{name}-{uuid.uuid4().hex[:8]}."


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) RSS in MiB."""
        return rss_mb(self.pid)

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far."""
        return cpu_s(self.pid)

    def tail(self, lines: int = 40) -> str:
        return log_tail(self.log, lines)


async def _ready(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url + "/ready", timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status == 200
    except (aiohttp.ClientError, OSError, TimeoutError):
        return False


@asynccontextmanager
async def service(
    name: str,
    module: str,
    env: Mapping[str, str],
    *,
    port_env: str,
    ready_timeout_s: float = 60.0,
    wait_ready: bool = True,
    log_dir: Path | None = None,
    python_args: Sequence[str] = (),
) -> AsyncIterator[Service]:
    """Run `python [python_args] -m module` with `env` on a free port (`port_env`); yield once GET /ready
    answers 200 (or at once when `wait_ready` is False); SIGTERM (then SIGKILL) on exit.

    `python_args` lets a benchmark profile the service, e.g. `("-m", "cProfile", "-o", path)`."""
    port = free_port()
    directory = log_dir or Path(tempfile.gettempdir()) / "hub-bench"
    directory.mkdir(parents=True, exist_ok=True)
    log = directory / f"{name}-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the child is awaited by polling
            [sys.executable, *python_args, "-m", module],
            env={**os.environ, **env, port_env: str(port)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    svc = Service(name, proc, f"http://127.0.0.1:{port}", log)
    try:
        if wait_ready:
            await until_ready(svc, timeout_s=ready_timeout_s)
        yield svc
    finally:
        await asyncio.to_thread(terminate_child, proc, grace_s=10.0)


async def until_ready(svc: Service, *, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while not await _ready(session, svc.url):
            if svc.proc.poll() is not None:
                raise BenchSetupError(f"{svc.name} exited with code {svc.proc.returncode}:\n{svc.tail()}")
            if time.monotonic() >= deadline:
                raise BenchSetupError(f"{svc.name} not ready within {timeout_s:.0f} s:\n{svc.tail()}")
            await asyncio.sleep(0.2)


class PeakRss:
    """Samples a process's VmHWM; keeps the last value read while the process was alive."""

    def __init__(self, svc: Service) -> None:
        self._svc = svc
        self.peak_mb = float("nan")

    def sample(self) -> None:
        with suppress(OSError):
            self.peak_mb = self._svc.rss_mb()[1]
