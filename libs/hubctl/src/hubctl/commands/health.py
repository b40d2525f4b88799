"""`hubctl health`: every service's /health plus PostgreSQL and Kafka reachability."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import aiohttp
import asyncpg

from hub_common import kafka
from hubctl.cli import Subparsers, command
from hubctl.context import HubctlSettings
from hubctl.output import render


def register(sub: Subparsers) -> None:
    command(sub, "health", help="health of every service, the database and Kafka", handler=run)


async def _service(session: aiohttp.ClientSession, name: str, url: str) -> dict[str, Any]:
    try:
        async with session.get(url + "/health") as resp:
            body = await resp.json(content_type=None)
            deps = {k: v for k, v in body.items() if v in ("connected", "disconnected")}
            return {"component": name, "status": body.get("status", resp.status), "detail": deps or url}
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return {"component": name, "status": "down", "detail": f"{url}: {type(exc).__name__}"}


async def _database(settings: HubctlSettings) -> dict[str, Any]:
    try:
        conn = await asyncpg.connect(settings.database.url.get_secret_value(), timeout=5)
        try:
            count = await conn.fetchval("SELECT count(*) FROM pg_stat_activity")
        finally:
            await conn.close()
        return {"component": "postgresql", "status": "ok", "detail": f"{count} connections"}
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return {"component": "postgresql", "status": "down", "detail": type(exc).__name__}


async def gather(settings: HubctlSettings) -> list[dict[str, Any]]:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        services = [_service(session, n, u) for n, u in settings.service_urls().items()]
        rows = list(await asyncio.gather(*services, _database(settings)))
    up = await kafka.ping(settings.kafka)
    rows.append({"component": "kafka", "status": "ok" if up else "down", "detail": settings.kafka.bootstrap_servers})
    return rows


async def run(args: argparse.Namespace, settings: HubctlSettings) -> int:
    rows = await gather(settings)
    render(rows, as_json=args.json, columns=["component", "status", "detail"])
    return 0 if all(r["status"] == "ok" for r in rows) else 1
