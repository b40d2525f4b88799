"""The date-range report: `reconciliation-<from>_<to>-<time>.csv` (one row per mismatch) and a `.summary.json`
beside it, from a streamed join of `transactions` and `operator_transactions` in PostgreSQL.

Memory stays bounded at any volume: each time slice of the range (`slice_s`) is ONE join in the database
(`rules.joined_query`) streamed out by `COPY ... TO STDOUT`. A MATCHED row (nearly all of them) never leaves the
database: every Hub entry is in exactly one joined row, so MATCHED = Hub entries - the other rows that have one.
Any other consistent or undecided row is a line naming its outcome (counted per chunk, never kept); a mismatch
carries its joined row as JSON and is written to the CSV at once. All slices and counts read one snapshot (a
REPEATABLE READ transaction), so they agree. No operator call is made: the operator side is what the
reconciler's feed poller has stored, and rows the feed has not covered yet count as AWAITING_FEED.
"""

from __future__ import annotations

import asyncio
import csv
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import monotonic as time_monotonic
from typing import Any, TextIO

import asyncpg
import orjson

from hub_common import db
from hub_common.errors import HubError
from hub_common.reconciliation.rules import IN_RANGE, MismatchKind, Outcome

FEED_NAME = "operator"

CSV_COLUMNS = (
    "ref_id",
    "operator_id",
    "kind",
    "detail",
    "hub_transaction_id",
    "hub_type",
    "hub_status",
    "hub_amount_cents",
    "hub_currency",
    "hub_created_at",
    "operator_transaction_id",
    "operator_status",
    "operator_amount_cents",
    "operator_currency",
    "operator_created_at",
)

_OUTCOMES = ", ".join(f"'{o.value}'" for o in Outcome)
# One line per joined row that is not MATCHED (COPY, CSV format): `<outcome>,` when it is consistent or undecided,
# `M,"<json>"` for a mismatch. jsonb's text never holds a raw newline, so a line is a row.
_SLICE = f"""
SELECT CASE WHEN j.verdict[1] IN ({_OUTCOMES}) THEN j.verdict[1] ELSE 'M' END,
       CASE WHEN j.verdict[1] IN ({_OUTCOMES}) THEN NULL ELSE to_jsonb(j) END
FROM ({IN_RANGE}) j WHERE j.verdict[1] <> 'MATCHED'
"""  # noqa: S608 - IN_RANGE and the outcomes are constants of hub_common.reconciliation.rules
_MISMATCH_LINE = b'M,"'
# JIT compiling the wide verdict expression costs more than it saves on these rows (measured: 1-2 s of compiling
# for a day whose join runs in about two).
_SESSION = "SET LOCAL jit = off"

# `entries`: the Hub entries of these rows, each transaction plus the cancel of a FAILED bet (see rules).
_HUB_TOTALS = """
SELECT currency::text AS currency, type, status, attempts > 0 AS sent, count(*) AS n, sum(amount_cents) AS cents,
       count(*) + count(*) FILTER (WHERE status = 'FAILED'
                                     AND EXISTS (SELECT 1 FROM ledger_compensations c WHERE c.transaction_id = t.id))
           AS entries
FROM transactions t WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2, 3, 4
"""
_OPERATOR_TOTALS = """
SELECT currency, coalesce(type, '-') AS type, status, count(*) AS n, sum(amount_cents) AS cents
FROM operator_transactions WHERE created_at >= $1 AND created_at < $2 GROUP BY 1, 2, 3
"""

Progress = Callable[[int, int], None]


class InvalidRangeError(HubError):
    """The range ends before it starts."""


class FeedNotStartedError(HubError):
    """No operator feed position is stored: the reconciler's feed poller has never completed a page."""


@dataclass(frozen=True)
class Mismatch:
    """One CSV row: one kind of disagreement about one operator id."""

    kind: MismatchKind
    detail: str
    row: dict[str, Any]


def neutralise(value: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading quote (numbers are left as they are)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def detail(kind: MismatchKind, row: dict[str, Any]) -> str:
    hub = f"hub {(row.get('role') == 'CANCEL' and 'cancel ') or ''}{row.get('status')}"
    if kind is MismatchKind.MISSING_IN_OPERATOR:
        return f"{hub}, operator has no record"
    if kind is MismatchKind.MISSING_IN_HUB:
        return f"operator {row.get('op_status')}, hub has no transaction"
    if kind is MismatchKind.AMOUNT_MISMATCH:
        return f"hub {row.get('amount_cents')} cents, operator {row.get('op_amount_cents')} cents"
    if kind is MismatchKind.CURRENCY_MISMATCH:
        return f"hub {row.get('currency')}, operator {row.get('op_currency')}"
    if row.get("status") == "COMPLETED" and not row.get("sent"):
        return f"hub settled it without an operator call, operator has a {row.get('op_status')} record"
    if row.get("type") == "BET" and row.get("status") == "FAILED" and row.get("role") == "TX":
        return "hub FAILED and cancelled the bet, operator applied the bet and holds no cancel"
    return f"{hub}, operator {row.get('op_status')}"


def mismatches(row: dict[str, Any]) -> list[Mismatch]:
    return [Mismatch(MismatchKind(k), detail(MismatchKind(k), row), row) for k in row["verdict"]]


def csv_row(m: Mismatch) -> list[object]:
    r = m.row
    cells: list[object] = [
        r.get("ref_id") or "",
        r.get("key") or r.get("op_key") or "",
        m.kind.value,
        m.detail,
        r.get("id") or "",
        r.get("type") or "",
        r.get("status") or "",
        r.get("amount_cents") if r.get("amount_cents") is not None else "",
        r.get("currency") or "",
        r.get("created_at") or "",
        r.get("op_operator_transaction_id") or "",
        r.get("op_status") or "",
        r.get("op_amount_cents") if r.get("op_amount_cents") is not None else "",
        r.get("op_currency") or "",
        r.get("op_created_at") or "",
    ]
    return [neutralise(c) for c in cells]


def day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    if last < first:
        raise InvalidRangeError("the range ends before it starts", first=first.isoformat(), last=last.isoformat())
    return datetime.combine(first, time.min, tzinfo=UTC), datetime.combine(last + timedelta(days=1), time.min, UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def feed_coverage(conn: db.Connection | asyncpg.Pool, name: str = FEED_NAME) -> datetime | None:
    """Operator records created before this time have been read by the feed poller (None: never)."""
    value = await conn.fetchval("SELECT covered_to FROM operator_feed_state WHERE name = $1", name)
    return value if isinstance(value, datetime) else None


async def wait_for_coverage(
    pool: asyncpg.Pool, target: datetime, *, timeout_s: float, poll_s: float = 1.0, name: str = FEED_NAME
) -> datetime | None:
    """The feed's coverage once it reaches `target`, or whatever it is after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        covered = await feed_coverage(pool, name)
        if (covered is not None and covered >= target) or loop.time() >= deadline:
            return covered
        await asyncio.sleep(min(poll_s, max(deadline - loop.time(), 0.0)))


class RangeReport:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        report_dir: Path,
        slice_s: float = 3600.0,
        feed_name: str = FEED_NAME,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._report_dir = report_dir
        self._slice = timedelta(seconds=slice_s)
        self._feed_name = feed_name
        self._clock = clock

    def slice_count(self, first: date, last: date) -> int:
        """How many steps `run` reports progress in."""
        return len(_slices(*day_bounds(first, last), self._slice))

    async def run(self, first: date, last: date, *, progress: Progress | None = None) -> dict[str, Any]:
        """Reconcile the whole UTC days `first`..`last`; writes the CSV and the summary, returns the summary."""
        start, end = day_bounds(first, last)
        generated = self._clock()
        started = time_monotonic()
        stem = f"reconciliation-{first.isoformat()}_{last.isoformat()}-{generated:%Y%m%dT%H%M%SZ}"
        csv_path = (self._report_dir / f"{stem}.csv").absolute()
        summary_path = csv_path.with_name(f"{stem}.summary.json")
        slices = _slices(start, end, self._slice)
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = csv_path.with_name(csv_path.name + ".tmp")
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute(_SESSION)
            covered = await feed_coverage(conn, self._feed_name)
            if covered is None:
                raise FeedNotStartedError(
                    "the operator feed has never been read: is the reconciler running with its feed enabled?"
                )
            hub_totals = await conn.fetch(_HUB_TOTALS, start, end)
            operator_totals = await conn.fetch(_OPERATOR_TOTALS, start, end)
            with tmp.open("w", newline="") as handle:
                sink = _Sink(handle)
                for done, (lo, hi) in enumerate(slices, start=1):
                    await conn.copy_from_query(_SLICE, covered, lo, hi, output=sink.feed, format="csv")
                    sink.end()
                    if progress is not None:
                        progress(done, len(slices))
        # Readers (`ls -lht reconciliation-reports`) never see a half-written report.
        tmp.replace(csv_path)
        outcomes = sink.outcomes
        # Every other joined row with a Hub entry was streamed out; the rest of the entries are MATCHED.
        entries = sum(r["entries"] for r in hub_totals)
        outcomes[Outcome.MATCHED.value] = entries - (sink.rows - sink.without_hub)
        summary = {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "generatedAt": iso(generated),
            "durationS": round(time_monotonic() - started, 3),
            "report": str(csv_path),
            "summary": str(summary_path),
            "feedCoveredTo": iso(covered),
            "complete": covered >= end and outcomes.get(Outcome.AWAITING_FEED.value, 0) == 0,
            "hubTransactions": sum(r["n"] for r in hub_totals),
            "operatorRecords": sum(r["n"] for r in operator_totals),
            "matched": outcomes.get(Outcome.MATCHED.value, 0),
            "noOperatorEffect": outcomes.get(Outcome.NO_EFFECT.value, 0),
            "cancelled": outcomes.get(Outcome.CANCELLED.value, 0),
            "inFlight": outcomes.get(Outcome.IN_FLIGHT.value, 0),
            "awaitingFeed": outcomes.get(Outcome.AWAITING_FEED.value, 0),
            "mismatchedIds": sink.mismatched_ids,
            "mismatches": sum(sink.kinds.values()),
            "byKind": dict(sorted(sink.kinds.items())),
            "totals": _totals(hub_totals, operator_totals),
        }
        summary_path.write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
        return summary


class _Sink:
    """Consumes the COPY stream chunk by chunk: counts outcome lines, writes mismatches to the CSV at once."""

    def __init__(self, handle: TextIO) -> None:
        self._handle = handle
        self._writer = csv.writer(handle)
        self._writer.writerow(CSV_COLUMNS)
        self._rest = b""
        self._lines: Counter[bytes] = Counter()
        self.rows = 0
        self.without_hub = 0
        self.mismatched_ids = 0
        self.kinds: Counter[str] = Counter()

    async def feed(self, chunk: bytes) -> None:
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        self._take(lines)

    def end(self) -> None:
        """The slice's stream is over (its last line may lack a newline)."""
        if self._rest:
            self._take([self._rest])
            self._rest = b""
        self._handle.flush()

    def _take(self, lines: list[bytes]) -> None:
        # Outcome lines repeat a handful of distinct values: counting them is one C-level pass per chunk.
        for line, n in Counter(lines).items():
            if not line.startswith(_MISMATCH_LINE):
                self._lines[line] += n
                continue
            row = orjson.loads(line[len(_MISMATCH_LINE) : -1].replace(b'""', b'"'))
            found = mismatches(row)
            for _ in range(n):
                self.kinds.update(m.kind.value for m in found)
                self._writer.writerows(csv_row(m) for m in found)
            self.mismatched_ids += n
            if row.get("role") is None:
                self.without_hub += n
        self.rows += len(lines)

    @property
    def outcomes(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for line, n in self._lines.items():
            counts[line.rstrip(b",").decode()] += n
        return counts


def _slices(start: datetime, end: datetime, step: timedelta) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    lo = start
    while lo < end:
        hi = min(lo + step, end)
        out.append((lo, hi))
        lo = hi
    return out


def _totals(hub: Iterable[asyncpg.Record], operator: Iterable[asyncpg.Record]) -> dict[str, Any]:
    """Per currency and side: count and amount by type. The Hub side counts what it had the operator apply."""
    totals: dict[str, Any] = {}

    def add(currency: str, side: str, tx_type: str, n: int, cents: int) -> None:
        slot = totals.setdefault(currency, {"hub": {}, "operator": {}})[side].setdefault(
            tx_type, {"count": 0, "amountCents": 0}
        )
        slot["count"] += n
        slot["amountCents"] += cents

    for r in hub:
        if r["status"] == "COMPLETED" and r["sent"]:
            add(r["currency"], "hub", r["type"], r["n"], int(r["cents"] or 0))
    for r in operator:
        if r["status"] == "COMPLETED":
            add(r["currency"], "operator", r["type"], r["n"], int(r["cents"] or 0))
    return dict(sorted(totals.items()))
