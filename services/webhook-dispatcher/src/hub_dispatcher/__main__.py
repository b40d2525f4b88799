"""`python -m hub_dispatcher`: load settings, set up telemetry, serve until SIGTERM."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from hub_common.http import run
from hub_common.telemetry import setup_logging, setup_tracing
from hub_dispatcher.app import SERVICE, create_app
from hub_dispatcher.settings import DispatcherSettings


def main() -> int:
    try:
        settings = DispatcherSettings()
    except ValidationError as exc:
        print(f"{SERVICE}: invalid settings (DISPATCHER_*):\n{exc}", file=sys.stderr)
        return 2
    setup_logging(SERVICE, settings.telemetry)
    setup_tracing(SERVICE, settings.telemetry)
    run(create_app(settings), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
