"""`python -m hub_reconciler`: validate settings, set up telemetry, serve until SIGTERM.
`python -m hub_reconciler reconcile ...`: the daily report as a one-shot command (see `cli.py`).

Invalid settings exit 2 naming each bad field, never echoing its value.
"""

from __future__ import annotations

import sys

from hub_common.service import serve
from hub_reconciler.app import SERVICE, create_app
from hub_reconciler.cli import main as reconcile
from hub_reconciler.settings import ReconcilerSettings


def main() -> None:
    if sys.argv[1:2] == ["reconcile"]:
        sys.exit(reconcile(sys.argv[2:]))
    serve(SERVICE, ReconcilerSettings, create_app)


if __name__ == "__main__":
    main()
