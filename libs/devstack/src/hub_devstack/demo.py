"""The demo traffic `make up` sends: funded players, a short stream of signed transactions, and its outcome."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from pydantic import SecretStr

from hub_common.schemas import TxStatus
from hub_common.signing import request_headers
from hub_devstack.errors import DevstackError
from hub_devstack.facts import StackFacts

PLAYERS = (("demo-alice", 10_000), ("demo-bob", 5_000), ("demo-carol", 1_000))
CURRENCY = "EUR"
FINAL = {s.value for s in TxStatus if s.is_final}


@dataclass
class DemoRow:
    ref_id: str
    type: str
    player_id: str
    amount_cents: int
    http_status: int = 0
    replayed: bool = False
    final_status: str = "-"
    balance_after: int | None = None
    webhook: bool = False


@dataclass
class DemoResult:
    rows: list[DemoRow] = field(default_factory=list)
    balances: dict[str, int] = field(default_factory=dict)


def demo_requests(run: str) -> list[dict[str, Any]]:
    """BETs, WINs, a REFUND and one BET far over its player's balance. `run` keeps refIds unique per run."""
    alice, bob, carol = (p for p, _ in PLAYERS)

    def tx(kind: str, player: str, amount: int, rnd: str, **extra: Any) -> dict[str, Any]:
        body = {"refId": f"{kind.lower()}-{rnd}-{run}", "type": kind, "playerId": player, "amountCents": amount}
        return {**body, "currency": CURRENCY, "roundId": f"{rnd}-{run}", "gameId": "demo-slot", **extra}

    bob_bet = tx("BET", bob, 300, "r2")
    return [
        tx("BET", alice, 250, "r1"),
        tx("WIN", alice, 600, "r1", roundClosed=True),
        bob_bet,
        tx("REFUND", bob, 300, "r2", originalRefId=bob_bet["refId"]),
        tx("BET", carol, 200, "r3"),
        tx("WIN", carol, 150, "r3", roundClosed=True),
        tx("BET", carol, 50_000, "r4"),  # insufficient funds
    ]


class DemoClient:
    """Signs every `/v1` call as the demo RGS client would."""

    def __init__(self, session: aiohttp.ClientSession, facts: StackFacts) -> None:
        self._session = session
        self._facts = facts
        self._secret = SecretStr(facts.hub_client_secret)

    def _headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return {
            "X-Client-Id": self._facts.hub_client_id,
            "Content-Type": "application/json",
            **request_headers(self._secret, method, path, body),
        }

    async def post(self, body: dict[str, Any], key: str) -> tuple[int, bool, dict[str, Any]]:
        raw = orjson.dumps(body)
        headers = {**self._headers("POST", "/v1/transactions", raw), "Idempotency-Key": key}
        async with self._session.post(self._facts.hub_url + "/v1/transactions", data=raw, headers=headers) as resp:
            replayed = resp.headers.get("Idempotent-Replayed", "").lower() == "true"
            return resp.status, replayed, await resp.json(content_type=None)

    async def get(self, ref_id: str) -> dict[str, Any]:
        path = f"/v1/transactions/{ref_id}"
        async with self._session.get(self._facts.hub_url + path, headers=self._headers("GET", path, b"")) as resp:
            data: dict[str, Any] = await resp.json(content_type=None)
            return data


async def seed_players(session: aiohttp.ClientSession, operator_url: str) -> None:
    body = {"players": [{"playerId": p, "balanceCents": c, "currency": CURRENCY} for p, c in PLAYERS]}
    async with session.post(operator_url + "/_admin/players", json=body) as resp:
        if resp.status >= 300:
            raise DevstackError(f"mock-operator refused the demo players: HTTP {resp.status} {await resp.text()}")


async def _settle_all(client: DemoClient, rows: list[DemoRow], *, timeout_s: float) -> None:
    """Poll every row until final, all sharing one deadline (a stuck pipeline costs `timeout_s` once)."""
    deadline = time.monotonic() + timeout_s
    pending = list(rows)
    while pending:
        for row in list(pending):
            tx = await client.get(row.ref_id)
            status = tx.get("status")
            if isinstance(status, str):
                row.final_status = status
                if isinstance(tx.get("balanceCents"), int):
                    row.balance_after = tx["balanceCents"]
                if status in FINAL:
                    pending.remove(row)
        if not pending or time.monotonic() >= deadline:
            return
        await asyncio.sleep(0.5)


def _webhook_ref_ids(report: dict[str, Any]) -> set[str]:
    found = set()
    for delivery in report.get("received", []):
        body = delivery.get("body")
        if isinstance(body, str | bytes):
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError:
                continue
        data = body.get("data") if isinstance(body, dict) else None
        if isinstance(data, dict) and isinstance(data.get("refId"), str):
            found.add(data["refId"])
    return found


async def _await_webhooks(
    session: aiohttp.ClientSession, facts: StackFacts, rows: list[DemoRow], timeout_s: float
) -> None:
    wanted = {r.ref_id for r in rows if r.final_status in FINAL}
    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while True:
        async with session.get(facts.rgs_url + "/_admin/webhooks") as resp:
            if resp.status == 200:
                seen = _webhook_ref_ids(await resp.json(content_type=None))
        if wanted <= seen or time.monotonic() >= deadline:
            break
        await asyncio.sleep(0.5)
    for row in rows:
        row.webhook = row.ref_id in seen


async def _balances(session: aiohttp.ClientSession, operator_url: str) -> dict[str, int]:
    balances = {}
    for player, _ in PLAYERS:
        async with session.get(f"{operator_url}/_admin/players/{player}") as resp:
            if resp.status == 200:
                data = await resp.json(content_type=None)
                if isinstance(data.get("balanceCents"), int):
                    balances[player] = data["balanceCents"]
    return balances


async def run_demo(facts: StackFacts, *, settle_timeout_s: float = 30.0) -> DemoResult:
    """Seed, send, wait until final, and collect what the mocks saw."""
    result = DemoResult()
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await seed_players(session, facts.operator_url)
        client = DemoClient(session, facts)
        requests = demo_requests(uuid.uuid4().hex[:6])
        for body in requests:
            row = DemoRow(body["refId"], body["type"], body["playerId"], body["amountCents"])
            row.http_status, row.replayed, _ = await client.post(body, key=f"key-{body['refId']}")
            result.rows.append(row)
        # An identical retry of the first request: answered from the idempotency record, not re-applied.
        first = requests[0]
        retry = DemoRow(first["refId"], first["type"] + " (retry)", first["playerId"], first["amountCents"])
        retry.http_status, retry.replayed, _ = await client.post(first, key=f"key-{first['refId']}")
        result.rows.append(retry)
        await _settle_all(client, result.rows, timeout_s=settle_timeout_s)
        await _await_webhooks(session, facts, result.rows, timeout_s=settle_timeout_s)
        result.balances = await _balances(session, facts.operator_url)
    return result


def render_table(result: DemoResult) -> str:
    header = ("refId", "type", "player", "amount", "HTTP", "final status", "balance after", "webhook")
    lines = [header]
    for r in result.rows:
        http = f"{r.http_status}{' (Idempotent-Replayed)' if r.replayed else ''}"
        balance = "-" if r.balance_after is None else str(r.balance_after)
        lines.append(
            (
                r.ref_id,
                r.type,
                r.player_id,
                str(r.amount_cents),
                http,
                r.final_status,
                balance,
                "yes" if r.webhook else "no",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    if result.balances:
        out.append("")
        out.append("operator balances: " + ", ".join(f"{p}={c}" for p, c in result.balances.items()))
    return "\n".join(out)
