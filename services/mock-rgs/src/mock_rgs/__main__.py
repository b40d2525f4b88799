"""`python -m mock_rgs`: validate settings (exit 2 naming each bad field), set up telemetry, serve until SIGTERM."""

from __future__ import annotations

from hub_common.service import serve
from mock_rgs.app import SERVICE, create_app
from mock_rgs.settings import MockRgsSettings


def main() -> None:
    serve(SERVICE, MockRgsSettings, create_app)


if __name__ == "__main__":
    main()
