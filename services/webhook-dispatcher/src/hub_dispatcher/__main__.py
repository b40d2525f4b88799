"""`python -m hub_dispatcher`: validate settings, set up telemetry, serve until SIGTERM.

Invalid settings exit 2 naming each bad field, never echoing its value.
"""

from __future__ import annotations

from hub_common.service import serve
from hub_dispatcher.app import SERVICE, create_app
from hub_dispatcher.settings import DispatcherSettings


def main() -> None:
    serve(SERVICE, DispatcherSettings, create_app)


if __name__ == "__main__":
    main()
