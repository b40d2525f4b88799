"""A burst of signed transactions sent to a running gateway as an RGS under load sends it (overload tests, bench).

Every request is signed afresh, carries its refId as Idempotency-Key, and is sent once: what the Hub answered
(status, time to answer, Retry-After, predicted wait) is recorded, never retried, so the caller sees admission
control's decisions as they were made.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import orjson
from pydantic import SecretStr

from hub_common.signing import request_headers

PATH = "/v1/transactions"


@dataclass(frozen=True)
class Answer:
    ref_id: str
    type: str
    player_id: str
    status: int
    seconds: float
    retry_after: str | None
    predicted_wait: str | None
    error_code: str | None


def burst_requests(
    run: str, *, bets: int, wins: int, players: int, currency: str = "EUR", amount_cents: int = 100
) -> list[dict[str, Any]]:
    """`bets` BETs and `wins` WINs over `players` players (`burst-<run>-<n>`), the WINs spread evenly among the
    BETs, as a busy casino's traffic interleaves them. Each WIN closes its own round."""
    total = bets + wins
    every = total / wins if wins else total + 1
    requests: list[dict[str, Any]] = []
    bet_n = win_n = 0
    for n in range(total):
        is_win = win_n < wins and n + 1 >= (win_n + 1) * every
        kind = "WIN" if is_win else "BET"
        index = win_n if is_win else bet_n
        player = f"burst-{run}-{n % players}"
        requests.append(
            {
                "refId": f"{kind.lower()}-{run}-{index}",
                "type": kind,
                "playerId": player,
                "amountCents": amount_cents,
                "currency": currency,
                "roundId": f"r-{run}-{kind.lower()}-{index}",
                "gameId": "burst-slot",
            }
        )
        if is_win:
            win_n += 1
        else:
            bet_n += 1
    return requests


def burst_players(requests: Sequence[dict[str, Any]]) -> list[str]:
    return sorted({r["playerId"] for r in requests})


async def send_burst(
    session: aiohttp.ClientSession,
    hub_url: str,
    client_id: str,
    secret: SecretStr,
    requests: Sequence[dict[str, Any]],
    *,
    concurrency: int,
) -> list[Answer]:
    """Send every request once, at most `concurrency` at a time; the answers in request order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(request: dict[str, Any]) -> Answer:
        body = orjson.dumps(request)
        async with gate:
            headers = {
                "X-Client-Id": client_id,
                "Content-Type": "application/json",
                "Idempotency-Key": request["refId"],
                **request_headers(secret, "POST", PATH, body),
            }
            started = time.perf_counter()
            async with session.post(hub_url.rstrip("/") + PATH, data=body, headers=headers) as response:
                raw = await response.read()
                seconds = time.perf_counter() - started
        parsed = orjson.loads(raw) if raw else None
        error = parsed.get("error") if isinstance(parsed, dict) else None
        return Answer(
            ref_id=request["refId"],
            type=request["type"],
            player_id=request["playerId"],
            status=response.status,
            seconds=seconds,
            retry_after=response.headers.get("Retry-After"),
            predicted_wait=response.headers.get("X-Predicted-Wait"),
            error_code=error.get("code") if isinstance(error, dict) else None,
        )

    return list(await asyncio.gather(*(one(r) for r in requests)))


@dataclass(frozen=True)
class Final:
    status: str
    error_code: str | None
    attempts: int


async def states(database_url: str, ref_ids: Sequence[str]) -> dict[str, Final]:
    """The current status of each transaction the database has among `ref_ids`."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT ref_id, status, error_code, attempts FROM transactions WHERE ref_id = ANY($1::text[])",
            list(ref_ids),
        )
    finally:
        await conn.close()
    return {r["ref_id"]: Final(r["status"], r["error_code"], r["attempts"]) for r in rows}
