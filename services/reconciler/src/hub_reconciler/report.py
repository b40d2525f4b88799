"""Date-range reconciliation (`hubctl reconcile --from --to`, and the daily run): Hub rows from PostgreSQL
against the operator feed over HTTP, written to `reconciliation-<from>_<to>-<time>.csv` plus a summary.
"""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from hub_common.schemas import TxStatus
from hub_reconciler.compare import Finding, compare, one_sided
from hub_reconciler.errors import InvalidRangeError
from hub_reconciler.feed import OperatorFeedClient, iso
from hub_reconciler.models import Facts, OperatorRecord

# Records near the range edges may sit on the other side of midnight at the operator: read a margin, use it
# only to match, never to report.
_EDGE_MARGIN = timedelta(hours=1)

CSV_COLUMNS = (
    "ref_id",
    "kind",
    "detail",
    "hub_transaction_id",
    "hub_status",
    "hub_amount_cents",
    "hub_currency",
    "operator_transaction_id",
    "operator_status",
    "operator_amount_cents",
    "operator_currency",
)

_HUB_QUERY = """
SELECT id, ref_id, type, player_id, amount_cents, currency, status, created_at
FROM transactions WHERE created_at >= $1 AND created_at < $2
"""
_HUB_BY_REF = (
    "SELECT id, ref_id, type, player_id, amount_cents, currency, status FROM transactions WHERE ref_id = ANY($1)"
)


@dataclass(frozen=True)
class ReportRow:
    ref_id: str
    finding: Finding
    hub: Facts | None
    operator: Facts | None

    def as_csv(self) -> list[str]:
        def side(facts: Facts | None) -> list[str]:
            if facts is None:
                return ["", "", "", ""]
            return [facts.transaction_id or "", facts.status, str(facts.amount_cents), facts.currency]

        return [self.ref_id, self.finding.kind.value, self.finding.detail, *side(self.hub), *side(self.operator)]


def _hub_facts(row: asyncpg.Record) -> Facts:
    return Facts(
        status=row["status"],
        amount_cents=row["amount_cents"],
        currency=row["currency"].strip(),
        transaction_id=str(row["id"]),
        type=row["type"],
        player_id=row["player_id"],
    )


def _in_window(record: OperatorRecord, start: datetime, end: datetime) -> bool:
    return record.created_at is None or start <= record.created_at < end


class RangeReconciler:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: OperatorFeedClient,
        *,
        report_dir: Path,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._client = client
        self._report_dir = report_dir
        self._clock = clock

    async def run(self, first: date, last: date) -> dict[str, Any]:
        """Reconcile the whole days `first`..`last` (inclusive, UTC); returns the summary."""
        if last < first:
            raise InvalidRangeError("the range ends before it starts", first=first.isoformat(), last=last.isoformat())
        start = datetime.combine(first, time.min, tzinfo=UTC)
        end = datetime.combine(last + timedelta(days=1), time.min, tzinfo=UTC)
        hub_rows = await self._pool.fetch(_HUB_QUERY, start, end)
        hub = {r["ref_id"]: _hub_facts(r) for r in hub_rows}
        operator_all = {
            r.transaction_id: r async for r in self._client.records(start - _EDGE_MARGIN, end + _EDGE_MARGIN)
        }
        operator_in_window = {k for k, r in operator_all.items() if _in_window(r, start, end)}
        # Operator records whose Hub row was created outside the window are matched against that row.
        strangers = [k for k in operator_in_window if k not in hub]
        extra = {r["ref_id"]: _hub_facts(r) for r in await self._pool.fetch(_HUB_BY_REF, strangers)}

        rows: list[ReportRow] = []
        matched = in_flight = 0
        for ref_id in sorted(hub.keys() | operator_in_window):
            hub_side = hub.get(ref_id) or extra.get(ref_id)
            record = operator_all.get(ref_id)
            op_side = Facts.from_operator(record) if record is not None else None
            if hub_side is not None and not TxStatus(hub_side.status).is_final:
                in_flight += 1  # runbook: "transaction may still be processing; re-run after a delay"
                continue
            if hub_side is not None and op_side is not None:
                found = compare(hub_side, op_side)
            else:
                found = one_sided(hub_side, op_side)
            matched += not found
            rows.extend(ReportRow(ref_id, f, hub_side, op_side) for f in found)

        generated = self._clock()
        path = (
            self._report_dir / f"reconciliation-{first.isoformat()}_{last.isoformat()}-{generated:%Y%m%dT%H%M%SZ}.csv"
        )
        await asyncio.to_thread(_write_csv, path, rows)
        by_kind = Counter(row.finding.kind.value for row in rows)
        return {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "generatedAt": iso(generated),
            "report": str(path),
            "hubTransactions": len(hub),
            "operatorRecords": len(operator_in_window),
            "matched": matched,
            "inFlight": in_flight,
            "mismatches": len(rows),
            "byKind": dict(sorted(by_kind.items())),
        }


def _write_csv(path: Path, rows: list[ReportRow]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(row.as_csv() for row in rows)
    # Readers (`ls -lht reconciliation-reports`) never see a half-written report.
    tmp.replace(path)
