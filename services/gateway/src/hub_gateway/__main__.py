"""`python -m hub_gateway`: validate settings (exit 2 naming each bad field), set up telemetry, serve until SIGTERM."""

from __future__ import annotations

import asyncio

import uvloop

from hub_common import service
from hub_gateway.app import SERVICE_NAME, create_app
from hub_gateway.settings import GatewaySettings


def load_settings() -> GatewaySettings:
    return service.load_settings(SERVICE_NAME, GatewaySettings)


def main() -> None:
    # Before the loop exists: aiohttp's runner creates it through the policy. An admission is mostly socket
    # round trips (HTTP, three to PostgreSQL, a share of a Kafka request); libuv's loop does them for less.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    service.serve(SERVICE_NAME, GatewaySettings, create_app)


if __name__ == "__main__":
    main()
