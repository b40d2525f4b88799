"""`python -m hub_gateway`: validate settings (exit 2 naming each bad field), set up telemetry, serve until SIGTERM."""

from __future__ import annotations

from hub_common import service
from hub_gateway.app import SERVICE, create_app
from hub_gateway.settings import GatewaySettings


def load_settings() -> GatewaySettings:
    return service.load_settings(SERVICE, GatewaySettings)


def main() -> None:
    service.serve(SERVICE, GatewaySettings, create_app)


if __name__ == "__main__":
    main()
