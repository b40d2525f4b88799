"""Helpers of the dispatcher's integration tests: the real mock-rgs in-process, result events as the ledger
publishes them, the dispatcher in-process or as a `python -m hub_dispatcher` process, and hubctl in-process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from pydantic import SecretStr

from hub_common.envelope import Envelope, wrap
from hub_common.kafka import TRANSACTIONS, KafkaProducer
from hub_common.schemas import ErrorCode, Transaction, TransactionEvent, TxStatus, TxType
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_devstack.procs import free_port
from hub_dispatcher.settings import DispatcherSettings, EndpointSettings, to_environment
from hubctl.context import HubctlSettings
from mock_rgs.admin_client import RgsAdminClient
from mock_rgs.app import create_app as create_rgs
from mock_rgs.settings import MockRgsSettings
from support.apps import serve
from support.hubctl import hubctl_json
from support.waits import eventually

CLIENT = "rgs-demo"
SECRETS = [SecretStr("wh-secret-old"), SecretStr("wh-secret-new")]


@dataclass(frozen=True)
class Rgs:
    url: str
    admin: RgsAdminClient


@asynccontextmanager
async def mock_rgs() -> AsyncIterator[Rgs]:
    """The real mock RGS (verifies both signature families, counts duplicates) on a free loopback port."""
    async with serve(create_rgs(MockRgsSettings(secrets=SECRETS, port=0))) as base, aiohttp.ClientSession() as http:
        yield Rgs(base + "/webhooks", RgsAdminClient(http, base))


def dispatcher_settings(
    kafka: KafkaSettings, database: DatabaseSettings, webhook_url: str, **overrides: Any
) -> DispatcherSettings:
    base: dict[str, Any] = {
        "kafka": kafka,
        "database": database,
        "endpoints": {CLIENT: EndpointSettings(url=webhook_url, secrets=SECRETS)},
        "retry_schedule_ms": [50, 100, 150],
        "timeout_s": 5,
        "sweep_interval_s": 0.2,
        "port": 0,
    }
    base.update(overrides)
    return DispatcherSettings(**base)


def result_event(status: TxStatus = TxStatus.COMPLETED, *, player: str = "p-1", client: str = CLIENT) -> Envelope:
    now = datetime.now(UTC)
    tx = Transaction(
        transaction_id=str(uuid.uuid4()),
        ref_id=f"bet-{uuid.uuid4().hex[:10]}",
        type=TxType.BET,
        player_id=player,
        amount_cents=250,
        currency="EUR",
        status=status,
        reason="insufficient funds" if status is TxStatus.REJECTED else None,
        created_at=now,
        updated_at=now,
        completed_at=now if status.is_final else None,
    )
    code = {TxStatus.REJECTED: ErrorCode.INSUFFICIENT_FUNDS, TxStatus.FAILED: ErrorCode.OPERATOR_UNAVAILABLE}
    payload = TransactionEvent(client_id=client, error_code=code.get(status), transaction=tx)
    return wrap(payload, correlation_id=f"corr-{uuid.uuid4().hex[:10]}")


async def publish(ledger: KafkaProducer, *envelopes: Envelope) -> None:
    for envelope in envelopes:
        await ledger.send(TRANSACTIONS, envelope, key=envelope.payload["transaction"]["refId"])


async def statuses(db: asyncpg.Connection, *event_ids: str) -> dict[str, str]:
    rows = await db.fetch(
        "SELECT id::text AS id, status FROM webhook_outbox WHERE id = ANY($1::uuid[])", list(event_ids)
    )
    return {r["id"]: r["status"] for r in rows}


async def all_in(db: asyncpg.Connection, status: str, *event_ids: str) -> bool:
    found = await statuses(db, *event_ids)
    return len(found) == len(event_ids) and set(found.values()) == {status}


async def run_hubctl(settings: HubctlSettings, *argv: str) -> Any:
    """A hubctl command with `--json`, as the CLI runs it; its output parsed."""
    return await hubctl_json(settings, *argv)


class DispatcherProcess:
    """`python -m hub_dispatcher` as a child process that a test can SIGKILL and start again."""

    def __init__(self, settings: DispatcherSettings, log: Path) -> None:
        self._port = free_port()
        self._env = os.environ | to_environment(settings.model_copy(update={"port": self._port}))
        self._log = log
        self._proc: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{self._port}"

    async def start(self, *, ready_timeout_s: float = 60) -> None:
        with self._log.open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "hub_dispatcher", env=self._env, stdout=out, stderr=out
            )
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:

            async def ready() -> bool:
                assert self._proc is not None
                if self._proc.returncode is not None:
                    raise AssertionError(f"dispatcher exited {self._proc.returncode}:\n{self.tail()}")
                try:
                    async with http.get(self.url + "/ready") as response:
                        return response.status == 200
                except (aiohttp.ClientError, OSError):
                    return False

            await eventually(ready, timeout_s=ready_timeout_s, what="dispatcher process ready")

    async def kill(self) -> None:
        """SIGKILL: no cleanup, no commit, no goodbye to the consumer group."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        await self._proc.wait()

    async def stop(self) -> None:
        if self._proc is None or self._proc.returncode is not None:
            return
        self._proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._proc.wait(), timeout=20)
        except TimeoutError:
            self._proc.kill()
            await self._proc.wait()

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
