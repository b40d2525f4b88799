"""Date-range reconciliation outside the service process (`hubctl reconcile --from --to`)."""

from __future__ import annotations

from datetime import date
from functools import partial
from typing import Any

import aiohttp

from hub_common import db
from hub_common.operator import Budget, Priority
from hub_reconciler.feed import OperatorFeedClient
from hub_reconciler.report import RangeReconciler
from hub_reconciler.settings import ReconcilerSettings


async def reconcile_dates(settings: ReconcilerSettings, first: date, last: date) -> dict[str, Any]:
    pool = await db.create_pool(settings.database)
    budget = Budget(pool, settings.operator)
    try:
        async with aiohttp.ClientSession() as session:
            client = OperatorFeedClient(settings.operator, session, gate=partial(budget.acquire, Priority.DEBIT))
            return await RangeReconciler(pool, client, report_dir=settings.report_dir).run(first, last)
    finally:
        await budget.close()
        await pool.close()
