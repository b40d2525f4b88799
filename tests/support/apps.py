"""Run an aiohttp application in-process on a free loopback port for a test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Start `app` (running its cleanup_ctx startup), yield its base URL, then shut it down cleanly."""
    runner = web.AppRunner(app, access_log=None)
    try:
        # setup() runs the cleanup_ctx start-ups; if one fails, cleanup() still unwinds those that started.
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
