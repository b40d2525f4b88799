"""`python -m mock_rgs`: run the mock RGS until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from hub_common.http import run
from hub_common.telemetry import setup_logging, setup_tracing
from mock_rgs.app import SERVICE, create_app
from mock_rgs.settings import MockRgsSettings


def main() -> None:
    try:
        settings = MockRgsSettings()
    except ValidationError as exc:
        print(f"{SERVICE}: invalid settings (MOCK_RGS_* environment):\n{exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(SERVICE, settings.telemetry)
    setup_tracing(SERVICE, settings.telemetry)
    run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
