"""`hubctl reconcile --from DATE --to DATE`: the date-range reconciliation, CSV report plus summary."""

from __future__ import annotations

import argparse
from datetime import date

from hub_reconciler.settings import OperatorFeedSettings, ReconcilerSettings
from hub_reconciler.standalone import reconcile_dates
from hubctl.cli import Subparsers, command
from hubctl.context import HubctlSettings
from hubctl.errors import HubctlError
from hubctl.output import render


def register(sub: Subparsers) -> None:
    help_ = "reconcile Hub and operator records for a date range (UTC days)"
    parser = command(sub, "reconcile", help=help_, handler=run)
    parser.add_argument("--from", dest="first", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")
    parser.add_argument("--to", dest="last", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD")


async def run(args: argparse.Namespace, settings: HubctlSettings) -> int:
    if args.last < args.first:
        raise HubctlError("--to is before --from")
    recon = ReconcilerSettings(
        kafka=settings.kafka,
        database=settings.database,
        operator=OperatorFeedSettings(
            url=settings.operator_url, client_id=settings.operator_client_id, secret=settings.operator_secret
        ),
    )
    summary = await reconcile_dates(recon, args.first, args.last)
    render(summary, as_json=args.json)
    return 0
