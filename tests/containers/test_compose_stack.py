"""`docker-compose up` brings up the whole Hub from the built images, gated by health checks; the Hub works end to
end inside it; `docker-compose down -v` leaves nothing behind.

One stack for the module, under its own compose project, every published port a free loopback port. The tests
do not depend on each other's order; the fixture takes the stack down with `down -v` at the end and fails the run
if any container, network or volume of the project is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import asyncpg
import orjson
import pytest
import yaml
from pydantic import SecretStr

from hub_client import verify_webhook
from hub_common.operator import operator_id
from hub_devstack.docker_engine import DockerEngine
from hub_devstack.procs import free_port
from hub_gateway.client import GatewayClient, GatewayResponse
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import PlayerSeed
from mock_rgs.admin_client import RgsAdminClient
from mock_rgs.models import Delivery
from support.containers import ROOT, docker
from support.runbook import run_runbook

pytestmark = pytest.mark.timeout(300)  # compose up and the health-gated start of nine containers

PORT_VARS = (
    "GATEWAY_PORT", "MOCK_OPERATOR_PORT", "MOCK_RGS_PORT", "LEDGER_PORT", "DISPATCHER_PORT", "RECONCILER_PORT",
    "HUB_KAFKA_PORT", "HUB_POSTGRES_PORT",
)  # fmt: skip
ONE_SHOT = "migrate"
# The demo roles the stack's PostgreSQL is initialised with (its init script, mounted by docker-compose.yml).
DEMO_ROLES = ROOT / "deploy" / "k8s" / "overlays" / "demo" / "postgres-init.sql"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


def compose_command() -> list[str]:
    """The Compose v2 plugin when the docker CLI has it, else the standalone docker-compose (Debian ships v1)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0:
        return ["docker", "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is None:
        pytest.fail("neither `docker compose` nor docker-compose is installed (apt-get install docker-compose)")
    return [standalone]


@dataclass
class Stack:
    project: str
    env: dict[str, str]
    command: list[str]
    started_at: float
    # The project's container events from `up` until every service was healthy.
    startup_events: list[dict[str, Any]] = field(default_factory=list)

    def compose(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.command, "-f", str(ROOT / "docker-compose.yml"), "-p", self.project, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def url(self, port_var: str) -> str:
        return f"http://127.0.0.1:{self.env[port_var]}"

    def database_url(self, role: str) -> str:
        """`integration_hub` as one of the demo roles (hub_owner, hub_hubctl, ...), on the published port."""
        passwords = dict(re.findall(r"CREATE ROLE (\w+) LOGIN PASSWORD '([^']+)'", DEMO_ROLES.read_text()))
        return f"postgresql://{role}:{passwords[role]}@127.0.0.1:{self.env['HUB_POSTGRES_PORT']}/integration_hub"

    def containers(self, engine: DockerEngine) -> list[dict[str, Any]]:
        return engine.containers(f"{PROJECT_LABEL}={self.project}")

    def down(self) -> subprocess.CompletedProcess[str]:
        return self.compose("down", "-v", "--remove-orphans", "--timeout", "20")


def _wait_all_healthy(stack: Stack, engine: DockerEngine, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        states = {c["Labels"][SERVICE_LABEL]: c["Status"] for c in stack.containers(engine)}
        waiting = {name: state for name, state in states.items() if name != ONE_SHOT and "(healthy)" not in state}
        if not waiting and states:
            return
        if time.monotonic() > deadline:
            logs = stack.compose("logs", "--tail", "30").stdout[-6000:]
            pytest.fail(f"not healthy after {timeout_s:.0f} s: {waiting}\n{logs}")
        time.sleep(1)


@pytest.fixture(scope="module")
def stack(images: dict[str, str], engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {
        **os.environ,
        **images,
        **{var: str(free_port()) for var in PORT_VARS},
        "POSTGRES_PASSWORD": uuid.uuid4().hex,
        "OPERATOR_SECRET": uuid.uuid4().hex,
        "WEBHOOK_SECRET": uuid.uuid4().hex,
        "HUB_CLIENT_SECRET": uuid.uuid4().hex,
    }
    project = f"hubtest{uuid.uuid4().hex[:8]}"
    env["HUB_POSTGRES_CONTAINER"] = f"{project}-postgres"
    running = Stack(project, env, compose_command(), time.time())
    # Watched from before `up`: the engine keeps only its last 256 events, and health checks produce several a
    # second, so asking afterwards would miss the start-up.
    events = tmp_path_factory.mktemp("compose") / "events.jsonl"
    filters = ["--filter", f"label={PROJECT_LABEL}={project}", "--filter", "type=container"]
    with events.open("w") as out:
        since = ["--since", str(int(running.started_at) - 1)]  # also what happened before it connected
        watcher = subprocess.Popen(["docker", "events", *since, *filters, "--format", "{{json .}}"], stdout=out)
    try:
        started = running.compose("up", "-d")
        if started.returncode != 0:
            pytest.fail(
                f"compose up failed:\n{started.stderr[-4000:]}\n{running.compose('logs', '--tail', '40').stdout}"
            )
        _wait_all_healthy(running, engine)
        watcher.terminate()
        watcher.wait(timeout=10)
        running.startup_events = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
        yield running
    finally:
        watcher.kill()
        watcher.wait(timeout=10)
        done = running.down()
    # After the `finally`: a failed start-up is reported as such, not hidden behind this check.
    left = _leftovers(running, engine)
    if done.returncode != 0 or left:
        pytest.fail(f"`down -v` (exit {done.returncode}) left {left or 'nothing'} behind: {done.stderr[-2000:]}")


def _get(engine: DockerEngine, path: str, **params: str) -> bytes:
    reply = engine.request("GET", f"{path}?{urlencode(params)}", timeout=30)
    assert reply.status == 200, reply.message()
    return reply.body


def test_start_up_is_gated_by_health_checks_and_migrations(stack: Stack) -> None:
    events = stack.startup_events

    def first(service: str, action: str, exit_code: str | None = None) -> int:
        times = [
            int(e["timeNano"])
            for e in events
            if e["Actor"]["Attributes"].get(SERVICE_LABEL) == service
            and e["Action"] == action
            and (exit_code is None or e["Actor"]["Attributes"].get("exitCode") == exit_code)
        ]
        assert times, f"no {action!r} event for {service}"
        return min(times)

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    edges = [
        (name, dep, rule["condition"]) for name, s in services.items() for dep, rule in s.get("depends_on", {}).items()
    ]
    assert len(edges) >= 15
    for dependent, dependency, condition in edges:
        if condition == "service_healthy":
            ready = first(dependency, "health_status: healthy")
        else:
            ready = first(dependency, "die", exit_code="0")
        assert ready <= first(dependent, "start"), f"{dependent} started before {dependency} was {condition}"


def test_hub_containers_run_read_only_as_uid_10001(stack: Stack, engine: DockerEngine) -> None:
    hub = [c for c in stack.containers(engine) if c["Labels"][SERVICE_LABEL] not in ("kafka", "postgres")]
    assert len(hub) == 7
    for container in hub:
        inspected = json.loads(docker("inspect", container["Id"]).stdout)[0]
        assert inspected["HostConfig"]["ReadonlyRootfs"] is True
        assert inspected["Config"]["User"] == "10001:10001"


async def _webhook(rgs: RgsAdminClient, ref_id: str, timeout_s: float = 60) -> Delivery:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for delivery in (await rgs.webhooks()).received:
            if isinstance(delivery.body, dict) and delivery.body["data"]["refId"] == ref_id:
                return delivery
        await asyncio.sleep(0.5)
    pytest.fail(f"no webhook for {ref_id} reached the mock RGS within {timeout_s:.0f} s")


async def _final(gateway: GatewayClient, ref_id: str, timeout_s: float = 90) -> GatewayResponse:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = await gateway.get_transaction(ref_id)
        if isinstance(answer.body, dict) and answer.body.get("status") == "COMPLETED":
            return answer
        await asyncio.sleep(1)
    pytest.fail(f"{ref_id} did not complete within {timeout_s:.0f} s")


def _bet(ref_id: str, player: str, kind: str = "BET", amount: int = 250) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "type": kind,
        "playerId": player,
        "amountCents": amount,
        "currency": "EUR",
        "roundId": "r-1",
        "gameId": "slot-7",
    }


async def test_signed_requests_are_answered_201_and_202_and_their_webhooks_verify(stack: Stack) -> None:
    player = f"compose-{uuid.uuid4().hex[:8]}"
    bet, win = f"bet-{uuid.uuid4().hex[:10]}", f"win-{uuid.uuid4().hex[:10]}"
    secret = SecretStr(stack.env["HUB_CLIENT_SECRET"])
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        operator = OperatorAdminClient(session, stack.url("MOCK_OPERATOR_PORT"))
        rgs = RgsAdminClient(session, stack.url("MOCK_RGS_PORT"))
        gateway = GatewayClient(session, stack.url("GATEWAY_PORT"), "rgs-demo", secret)
        await operator.seed_players([PlayerSeed(player_id=player, balance_cents=10_000, currency="EUR")])

        answered = await gateway.post_transaction(_bet(bet, player), idempotency_key=f"k-{bet}")
        assert answered.status == 201, answered.body
        assert answered.body["status"] == "COMPLETED" and answered.body["balanceCents"] == 9_750

        # With the ledger stopped the gateway admits the WIN and answers 202 once its outcome budget is spent;
        # the ledger applies it after it is started again: nothing was lost on the way.
        assert stack.compose("stop", "ledger").returncode == 0
        try:
            pending = await gateway.post_transaction(_bet(win, player, "WIN", 1_000), idempotency_key=f"k-{win}")
            assert pending.status == 202, pending.body
            assert pending.headers["Location"].endswith(f"/v1/transactions/{win}")
        finally:
            assert stack.compose("start", "ledger").returncode == 0
        completed = await _final(gateway, win)
        assert completed.body["balanceCents"] == 10_750
        assert (await operator.player(player)).balance_cents == 10_750
        assert (await operator.ledger()).apply_counts[operator_id("rgs-demo", win)] == 1

        for ref_id in (bet, win):
            delivery = await _webhook(rgs, ref_id)
            assert delivery.verified and delivery.status == 200
            # Verified as an RGS would, independently of the mock: both signature families over the raw body.
            event = verify_webhook(delivery.headers, orjson.dumps(delivery.body), [stack.env["WEBHOOK_SECRET"]])
            assert event.transaction.ref_id == ref_id


async def test_the_runbooks_sql_runs_on_the_stacks_database(stack: Stack) -> None:
    # The runbook's quick health check and connection, as written (the container name is the only change).
    name = stack.env["HUB_POSTGRES_CONTAINER"]
    assert docker("exec", name, "pg_isready", "-U", "postgres").returncode == 0
    counted = docker("exec", name, "psql", "-U", "postgres", "-d", "integration_hub", "-Atc", "SELECT 1")
    assert counted.stdout.strip() == "1", counted.stderr
    # Every runbook statement as the SRE role (hub_hubctl), the break-glass one as the schema owner.
    owner = await asyncpg.connect(stack.database_url("hub_owner"))
    sre = await asyncpg.connect(stack.database_url("hub_hubctl"))
    try:
        # The schema the migrate container applied, owned by the owner role.
        applied = await owner.fetchval("SELECT count(*) FROM schema_migrations")
        assert isinstance(applied, int) and applied >= 1
        failures, break_glass = await run_runbook(sre, owner)
    finally:
        await sre.close()
        await owner.close()
    assert break_glass == 1
    assert not failures, "runbook statements that fail on the compose database:\n\n" + "\n\n".join(failures)


def _leftovers(stack: Stack, engine: DockerEngine) -> list[str]:
    """The project's containers, networks and volumes still known to the engine (by label, and by name so a
    leftover without compose's labels cannot hide)."""
    label = json.dumps({"label": [f"{PROJECT_LABEL}={stack.project}"]})
    left = [f"container {c['Names'][0]}" for c in stack.containers(engine)]
    left += [f"network {n['Name']}" for n in json.loads(_get(engine, "/networks", filters=label))]
    left += [f"volume {v['Name']}" for v in json.loads(_get(engine, "/volumes", filters=label))["Volumes"] or []]
    named = [f"volume {v['Name']}" for v in json.loads(_get(engine, "/volumes"))["Volumes"] or []]
    named += [f"network {n['Name']}" for n in json.loads(_get(engine, "/networks"))]
    left += [item for item in named if item.split(" ", 1)[1].startswith(f"{stack.project}_") and item not in left]
    return left
