"""`python -m hub_ledger`: load settings (exit 2 with a clear message when invalid), then serve."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from hub_common.http import run
from hub_common.telemetry import setup_logging, setup_tracing
from hub_ledger.app import SERVICE, create_app
from hub_ledger.settings import LedgerSettings


def main() -> None:
    try:
        settings = LedgerSettings()
    except ValidationError as exc:
        print(f"invalid ledger settings (LEDGER_* environment):\n{exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(SERVICE, settings.telemetry)
    setup_tracing(SERVICE, settings.telemetry)
    run(create_app(settings), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()
