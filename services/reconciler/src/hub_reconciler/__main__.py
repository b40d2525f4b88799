"""`python -m hub_reconciler`: the reconciler service (ops server on port 3012 by default)."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from hub_common.http import run
from hub_common.telemetry import setup_logging, setup_tracing
from hub_reconciler.app import SERVICE, create_app
from hub_reconciler.settings import ReconcilerSettings


def main() -> int:
    try:
        settings = ReconcilerSettings()
    except ValidationError as exc:
        print(f"invalid reconciler settings (RECONCILER_* environment):\n{exc}", file=sys.stderr)
        return 2
    setup_logging(SERVICE, settings.telemetry)
    setup_tracing(SERVICE, settings.telemetry)
    run(create_app(settings), host=settings.host, port=settings.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
