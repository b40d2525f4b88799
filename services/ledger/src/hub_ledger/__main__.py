"""`python -m hub_ledger`: validate settings (exit 2 naming each bad field), set up telemetry, serve until SIGTERM."""

from __future__ import annotations

import asyncio

import uvloop

from hub_common.service import serve
from hub_ledger.app import SERVICE, create_app
from hub_ledger.settings import LedgerSettings


def main() -> None:
    # Before the loop exists: aiohttp's runner creates it through the policy. Most of the ledger's CPU is
    # per-round-trip loop overhead, which libuv's loop cuts (see pyproject.toml).
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    serve(SERVICE, LedgerSettings, create_app)


if __name__ == "__main__":
    main()
