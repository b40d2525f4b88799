"""`python -m hub_ledger`: validate settings (exit 2 naming each bad field), set up telemetry, serve until SIGTERM."""

from __future__ import annotations

from hub_common.service import serve
from hub_ledger.app import SERVICE, create_app
from hub_ledger.settings import LedgerSettings


def main() -> None:
    serve(SERVICE, LedgerSettings, create_app)


if __name__ == "__main__":
    main()
