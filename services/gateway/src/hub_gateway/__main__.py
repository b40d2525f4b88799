"""`python -m hub_gateway`: load settings, set up telemetry, serve until SIGTERM."""

from __future__ import annotations

import sys

from pydantic import ValidationError
from pydantic_settings import SettingsError

from hub_common.http import run
from hub_common.telemetry import setup_logging, setup_tracing
from hub_gateway.app import SERVICE_NAME, create_app
from hub_gateway.settings import GatewaySettings


def load_settings() -> GatewaySettings:
    try:
        return GatewaySettings()
    except ValidationError as exc:
        # Field and reason only: the rejected input may be a client secret.
        for error in exc.errors(include_input=False, include_url=False):
            location = ".".join(str(part) for part in error["loc"])
            print(f"invalid gateway setting {location}: {error['msg']}", file=sys.stderr)
        sys.exit(2)
    except SettingsError as exc:
        print(f"invalid gateway settings: {exc}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    settings = load_settings()
    setup_logging(SERVICE_NAME, settings.telemetry)
    setup_tracing(SERVICE_NAME, settings.telemetry)
    run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
