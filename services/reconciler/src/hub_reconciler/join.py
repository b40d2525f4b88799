"""The continuous join's state, in PostgreSQL (reconciliation_join): which operator ids the streams touched,
which mismatches are open for each, and the events decided but not yet published.

Why PostgreSQL and not a faust table: both sides of the join already live there (transactions, written by the
ledger; operator_transactions, written by the feed), so the state has no changelog to replay after a restart,
replicas share it, and the verdict is the very SQL the date-range report uses (`hub_common.reconciliation.rules`).

Per operator id: `touch` (a record arrived) marks it pending; once its grace window has passed since it was first
seen, `settle` evaluates it and turns the change of its open mismatches into Mismatch / MismatchResolved events,
stored in `outbox` in the same transaction; `flush` publishes them and clears the outbox. A crash anywhere
re-publishes the same events (same eventIds) and loses none.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from hub_common import db
from hub_common.envelope import wrap
from hub_common.kafka import MISMATCHES, KafkaProducer
from hub_common.operator import operator_id_sql
from hub_common.reconciliation.events import Mismatch, MismatchResolved, Side, event_id
from hub_common.reconciliation.report import FEED_NAME, detail, feed_coverage
from hub_common.reconciliation.rules import SETTLED, UNDECIDED, MismatchKind, Outcome, by_keys
from hub_common.telemetry import kafka_headers, new_correlation_id
from hub_reconciler.metrics import MISMATCHES as MISMATCH_COUNT
from hub_reconciler.metrics import RESOLVED, SWEEP_EVALUATED

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OP_ID = operator_id_sql("t")


# The ids a batch names: operator ids ($1), the Hub transactions' (by id, $2: their stored operator id column),
# plus their partners (the cancel of a FAILED bet and the bet are judged together): a FAILED bet's cancel is looked
# up from the bet ($3, few), a cancel's bet from the cancel ($1, a probe of the small compensations table). An id
# already pending keeps its row untouched: it is judged when its grace ends anyway. An id judged before and named
# again (a late record) is pending again with its old, past due time: counted, so the caller can have it judged at
# once.
_TOUCH = f"""
WITH keys AS (
        SELECT unnest($1::text[]) AS key
        UNION SELECT {_OP_ID} FROM transactions t WHERE t.id = ANY($2::uuid[])
        UNION SELECT c.operator_transaction_id FROM ledger_compensations c WHERE c.transaction_id = ANY($3::uuid[])
        UNION SELECT {_OP_ID} FROM ledger_compensations c JOIN transactions t ON t.id = c.transaction_id
              WHERE c.operator_transaction_id = ANY($1::text[])),
     stored AS (
        INSERT INTO reconciliation_join AS j (operator_id, first_seen_at, due_at, pending, updated_at)
        SELECT key, $4::timestamptz, $4::timestamptz + $5::interval, true, $4::timestamptz FROM keys
        ON CONFLICT (operator_id) DO UPDATE SET pending = true, updated_at = excluded.updated_at WHERE NOT j.pending
        RETURNING xmax::text <> '0' AS reopened)
SELECT count(*) FILTER (WHERE reopened) FROM stored
"""  # noqa: S608 - _OP_ID is the operator id column (hub_common.operator.ids)


_SETTLED = ", ".join(f"'{o.value}'" for o in SETTLED)
_UNDECIDED = ", ".join(f"'{o.value}'" for o in UNDECIDED)
_UNDECIDED_VALUES = frozenset(o.value for o in UNDECIDED)
_OUTCOME_VALUES = frozenset(o.value for o in Outcome)

# $1 coverage, $2 now, $3 how many, $4 the grace window. `due` is locked (SKIP
# LOCKED: replicas share the work); an id whose verdict is not decidable yet waits one more grace window, one
# that is consistent with no open mismatch is closed; the rest (`rest`, as JSON) is decided by `_decide`.
_SETTLE = f"""
WITH due AS MATERIALIZED (
        SELECT operator_id, open, events FROM reconciliation_join
        WHERE pending AND due_at <= $2
        ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED),
     v AS ({by_keys("SELECT operator_id FROM due")}),
     judged AS (
        SELECT DISTINCT ON (d.operator_id) d.operator_id, d.open, d.events, v.verdict, v.ref_id,
               v.verdict[1] IN ({_UNDECIDED}) AS later,
               d.open = '{{}}'::jsonb AND (v.verdict IS NULL OR v.verdict[1] IN ({_SETTLED})) AS quiet,
               CASE WHEN v.verdict IS NOT NULL THEN to_jsonb(v) END AS row
        FROM due d LEFT JOIN v ON coalesce(v.key, v.op_key) = d.operator_id
        ORDER BY d.operator_id),
     closed AS (
        UPDATE reconciliation_join r
        SET pending = j.later, due_at = CASE WHEN j.later THEN $2 + $4::interval ELSE $2 END,
            ref_id = coalesce(j.ref_id, r.ref_id), updated_at = $2
        FROM judged j WHERE r.operator_id = j.operator_id AND (j.later OR j.quiet)
        RETURNING r.operator_id)
SELECT (SELECT count(*) FROM due) AS n,
       (SELECT jsonb_agg(jsonb_build_object('key', j.operator_id, 'open', j.open, 'events', j.events, 'row', j.row))
        FROM judged j WHERE NOT (j.later OR j.quiet)) AS rest
"""  # noqa: S608 - by_keys over a constant set, the outcomes are constants of hub_common.reconciliation.rules


@dataclass
class Touch:
    """What one batch of the two topics names: Hub transactions (by id: the join reads their stored operator id,
    never derives it), the FAILED bets among them, and operator ids."""

    transactions: list[uuid.UUID] = field(default_factory=list)
    failed_bets: list[uuid.UUID] = field(default_factory=list)
    operator: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _State:
    key: str
    open: dict[str, str]
    events: int


class JoinState:
    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: KafkaProducer,
        *,
        grace_s: float,
        retention_s: float,
        feed_name: str = FEED_NAME,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._grace = timedelta(seconds=grace_s)
        self._retention = timedelta(seconds=retention_s)
        self._feed_name = feed_name
        self._clock = clock

    async def touch(self, conn: db.Connection | asyncpg.Pool, touch: Touch) -> int:
        """Mark the ids pending; returns how many had been judged already (due again at once)."""
        if not (touch.transactions or touch.operator):
            return 0
        args = (touch.operator, touch.transactions, touch.failed_bets, self._clock(), self._grace)
        return int(await conn.fetchval(_TOUCH, *args) or 0)

    async def settle(self, *, limit: int) -> int:
        """Evaluate up to `limit` pending ids whose grace has passed; returns how many were evaluated.

        One statement judges them all and closes, in the database, every id with nothing to report (consistent
        and no open mismatch) or not decidable yet; only the ids whose mismatches open or clear come to Python."""
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            covered = await feed_coverage(conn, self._feed_name) or _EPOCH
            judged = await conn.fetchrow(_SETTLE, covered, now, limit, self._grace)
            assert judged is not None  # an aggregate always answers one row
            evaluated = int(judged["n"])
            rest = orjson.loads(judged["rest"]) if judged["rest"] is not None else []
            if rest:
                updates = [self._decide(_State(r["key"], r["open"], r["events"]), r["row"], now) for r in rest]
                await conn.execute(
                    """UPDATE reconciliation_join j SET ref_id = coalesce(u.ref_id, j.ref_id), pending = u.pending,
                              due_at = u.due_at, open = u.open::jsonb, events = u.events,
                              outbox = CASE WHEN u.outbox IS NULL THEN j.outbox
                                            ELSE coalesce(j.outbox, '[]'::jsonb) || u.outbox::jsonb END,
                              updated_at = $8
                       FROM unnest($1::text[], $2::text[], $3::boolean[], $4::timestamptz[], $5::text[], $6::int[],
                                   $7::text[]) AS u(key, ref_id, pending, due_at, open, events, outbox)
                       WHERE j.operator_id = u.key""",
                    [u.key for u in updates],
                    [u.ref_id for u in updates],
                    [u.pending for u in updates],
                    [u.due_at for u in updates],
                    [orjson.dumps(u.open).decode() for u in updates],
                    [u.events for u in updates],
                    [orjson.dumps(u.outbox).decode() if u.outbox else None for u in updates],
                    now,
                )
        SWEEP_EVALUATED.inc(evaluated)
        return evaluated

    def _decide(self, state: _State, row: dict[str, Any] | None, now: datetime) -> _Update:
        verdict = list(row["verdict"]) if row is not None else [Outcome.NO_EFFECT.value]
        ref_id = row.get("ref_id") if row is not None else None
        if verdict[0] in _UNDECIDED_VALUES:
            # Not decidable yet (the Hub or the feed has not caught up): look again one grace window later.
            return _Update(state.key, ref_id, True, now + self._grace, state.open, state.events, [])
        kinds = [] if verdict[0] in _OUTCOME_VALUES else [MismatchKind(k) for k in verdict]
        opened = dict(state.open)
        outbox: list[str] = []
        sequence = state.events
        correlation_id = new_correlation_id()
        for kind in kinds:
            if kind.value in opened:
                continue
            assert row is not None  # a mismatch always comes from a joined row
            eid = event_id(state.key, kind, "open", sequence)
            sequence += 1
            opened[kind.value] = eid
            event = Mismatch(
                ref_id=ref_id,
                operator_id=state.key,
                kind=kind,
                detail=detail(kind, row),
                hub=_hub_side(row),
                operator=_operator_side(row),
                detected_at=now,
            )
            outbox.append(_encoded(event, correlation_id, eid, now))
        for kind_value in [k for k in opened if MismatchKind(k) not in kinds]:
            kind = MismatchKind(kind_value)
            eid = event_id(state.key, kind, "resolved", sequence)
            sequence += 1
            resolved = MismatchResolved(
                ref_id=ref_id,
                operator_id=state.key,
                kind=kind,
                resolves=opened.pop(kind_value),
                detail=f"cleared: now {verdict[0] if not kinds else ', '.join(k.value for k in kinds)}",
                resolved_at=now,
            )
            outbox.append(
                wrap(resolved, correlation_id=correlation_id, event_id=eid, occurred_at=now).encode().decode()
            )
        return _Update(state.key, ref_id, False, now, opened, sequence, outbox)

    async def flush(self, *, limit: int = 1000) -> int:
        """Publish decided events (oldest ids first); returns how many were sent."""
        sent = 0
        while True:
            async with self._pool.acquire() as conn, conn.transaction():
                rows = await conn.fetch(
                    """SELECT operator_id, outbox FROM reconciliation_join WHERE outbox IS NOT NULL
                       LIMIT $1 FOR UPDATE SKIP LOCKED""",
                    limit,
                )
                if not rows:
                    return sent
                # The rows stay locked until their events are confirmed: ids are sent side by side (the
                # producer batches them), each id's events in order.
                counts = await asyncio.gather(*(self._publish_all(r["operator_id"], r["outbox"]) for r in rows))
                sent += sum(counts)
                await conn.execute(
                    "UPDATE reconciliation_join SET outbox = NULL WHERE operator_id = ANY($1::text[])",
                    [r["operator_id"] for r in rows],
                )
            if len(rows) < limit:
                return sent

    async def _publish_all(self, key: str, outbox: str) -> int:
        events = orjson.loads(outbox)
        for raw in events:
            await self._publish(key, raw)
        return len(events)

    async def _publish(self, key: str, raw: str) -> None:
        envelope = orjson.loads(raw)
        correlation_id = envelope.get("correlationId") or new_correlation_id()
        await self._producer.send_raw(
            self._producer.settings.topic(MISMATCHES),
            raw.encode(),
            key=key.encode(),
            headers=kafka_headers(correlation_id),
        )
        payload = envelope.get("payload", {})
        if envelope.get("schema", "").startswith("MismatchResolved/"):
            RESOLVED.labels(kind=payload.get("kind", "")).inc()
            log.info("reconciliation mismatch resolved", extra={"operatorId": key, "kind": payload.get("kind")})
        else:
            MISMATCH_COUNT.labels(kind=payload.get("kind", "")).inc()
            log.warning(
                "reconciliation mismatch",
                extra={"operatorId": key, "kind": payload.get("kind"), "detail": payload.get("detail")},
            )

    async def purge(self, *, batch: int = 10_000) -> int:
        """Forget ids untouched for the retention (never one with events still to publish)."""
        status = await self._pool.execute(
            """DELETE FROM reconciliation_join WHERE operator_id IN (
                   SELECT operator_id FROM reconciliation_join
                   WHERE updated_at < $1 AND NOT pending AND outbox IS NULL LIMIT $2)""",
            self._clock() - self._retention,
            batch,
        )
        return int(status.split()[-1])


@dataclass(frozen=True)
class _Update:
    key: str
    ref_id: str | None
    pending: bool
    due_at: datetime
    open: dict[str, str]
    events: int
    outbox: list[str]


def _encoded(payload: Mismatch | MismatchResolved, correlation_id: str, eid: str, now: datetime) -> str:
    return wrap(payload, correlation_id=correlation_id, event_id=eid, occurred_at=now).encode().decode()


def _hub_side(row: dict[str, Any]) -> Side | None:
    if row.get("role") is None:
        return None
    return Side(
        status=row["status"],
        amount_cents=row.get("amount_cents"),
        currency=row.get("currency"),
        transaction_id=str(row["id"]) if row.get("id") is not None else None,
        type=row.get("type"),
    )


def _operator_side(row: dict[str, Any]) -> Side | None:
    if row.get("op_key") is None:
        return None
    return Side(
        status=row["op_status"],
        amount_cents=row.get("op_amount_cents"),
        currency=row.get("op_currency"),
        transaction_id=row.get("op_operator_transaction_id"),
    )
