"""`python -m hub_dispatcher`: validate settings, set up telemetry, serve until SIGTERM.

Invalid settings exit 2 naming each bad field, never echoing its value.
"""

from __future__ import annotations

import asyncio

import uvloop

from hub_common.service import serve
from hub_dispatcher.app import SERVICE, create_app
from hub_dispatcher.settings import DispatcherSettings


def main() -> None:
    # Before the loop exists: aiohttp's runner creates it through the policy.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    serve(SERVICE, DispatcherSettings, create_app)


if __name__ == "__main__":
    main()
