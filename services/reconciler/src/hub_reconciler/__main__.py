"""`python -m hub_reconciler`: validate settings, set up telemetry, serve until SIGTERM.

Invalid settings exit 2 naming each bad field, never echoing its value.
"""

from __future__ import annotations

from hub_common.service import serve
from hub_reconciler.app import SERVICE, create_app
from hub_reconciler.settings import ReconcilerSettings


def main() -> None:
    serve(SERVICE, ReconcilerSettings, create_app)


if __name__ == "__main__":
    main()
