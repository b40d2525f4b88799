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

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from hub_common.reconciliation.rules import BY_KEYS, UNDECIDED, MismatchKind, Outcome
from hub_common.telemetry import kafka_headers, new_correlation_id
from hub_reconciler.metrics import MISMATCHES as MISMATCH_COUNT
from hub_reconciler.metrics import RESOLVED, SWEEP_EVALUATED

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_OP_ID = operator_id_sql("t")


# Operator ids ($1), plus those of Hub transactions ($4, by id: the stored column), plus each one's partner: the
# cancel of a FAILED bet and the bet are judged together. Returns every id touched.
_TOUCH = f"""
WITH k AS (SELECT unnest($1::text[]) AS key
           UNION SELECT {_OP_ID} FROM transactions t WHERE t.id = ANY($4::uuid[])),
     keys AS (
        SELECT key FROM k
        UNION SELECT c.operator_transaction_id FROM k JOIN transactions t ON {_OP_ID} = k.key
                                          JOIN ledger_compensations c ON c.transaction_id = t.id
        UNION SELECT {_OP_ID} FROM k JOIN ledger_compensations c ON c.operator_transaction_id = k.key
                                    JOIN transactions t ON t.id = c.transaction_id)
INSERT INTO reconciliation_join (operator_id, first_seen_at, due_at, pending, updated_at)
SELECT key, $2::timestamptz, $2::timestamptz + $3::interval, true, $2::timestamptz FROM keys
ON CONFLICT (operator_id) DO UPDATE SET pending = true, updated_at = excluded.updated_at
RETURNING operator_id
"""  # noqa: S608 - _OP_ID is the operator id column (hub_common.operator.ids)


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

    async def touch(
        self,
        conn: db.Connection | asyncpg.Pool,
        keys: Sequence[str],
        transactions: Sequence[uuid.UUID] = (),
    ) -> list[str]:
        """Mark operator ids `keys` and those of the Hub `transactions` pending; returns every id marked."""
        if not keys and not transactions:
            return []
        rows = await conn.fetch(_TOUCH, list(keys), self._clock(), self._grace, list(transactions))
        return [r["operator_id"] for r in rows]

    async def settle(self, keys: Sequence[str] | None, *, limit: int) -> int:
        """Evaluate pending ids whose grace has passed (`keys`: only those); returns how many were evaluated."""
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT operator_id, open, events FROM reconciliation_join
                   WHERE pending AND due_at <= $1 AND ($2::text[] IS NULL OR operator_id = ANY($2::text[]))
                   ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED""",
                now,
                list(keys) if keys is not None else None,
                limit,
            )
            if not rows:
                return 0
            states = [_State(r["operator_id"], orjson.loads(r["open"]), r["events"]) for r in rows]
            covered = await feed_coverage(conn, self._feed_name) or _EPOCH
            joined = await conn.fetch(BY_KEYS, covered, [s.key for s in states])
            by_key: dict[str, dict[str, Any]] = {}
            for record in joined:
                row = dict(record)
                by_key[row["key"] or row["op_key"]] = row
            updates = [self._decide(s, by_key.get(s.key), now) for s in states]
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
        SWEEP_EVALUATED.inc(len(states))
        return len(states)

    def _decide(self, state: _State, row: dict[str, Any] | None, now: datetime) -> _Update:
        verdict = list(row["verdict"]) if row is not None else [Outcome.NO_EFFECT.value]
        ref_id = row.get("ref_id") if row is not None else None
        if verdict[0] in {o.value for o in UNDECIDED}:
            # Not decidable yet (the Hub or the feed has not caught up): look again one grace window later.
            return _Update(state.key, ref_id, True, now + self._grace, state.open, state.events, [])
        kinds = [] if verdict[0] in {o.value for o in Outcome} else [MismatchKind(k) for k in verdict]
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
                for row in rows:
                    for raw in orjson.loads(row["outbox"]):
                        await self._publish(row["operator_id"], raw)
                        sent += 1
                await conn.execute(
                    "UPDATE reconciliation_join SET outbox = NULL WHERE operator_id = ANY($1::text[])",
                    [r["operator_id"] for r in rows],
                )
            if len(rows) < limit:
                return sent

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
