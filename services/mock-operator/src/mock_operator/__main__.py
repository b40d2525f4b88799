"""`python -m mock_operator`: validate settings, set up telemetry, serve until SIGTERM.

Invalid settings exit 2 naming each bad field, never echoing its value.
"""

from __future__ import annotations

from hub_common.service import serve
from mock_operator.app import SERVICE, create_app
from mock_operator.settings import MockOperatorSettings


def main() -> None:
    serve(SERVICE, MockOperatorSettings, create_app)


if __name__ == "__main__":
    main()
