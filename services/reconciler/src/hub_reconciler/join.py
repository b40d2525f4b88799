"""One step of the join per input record: the new state of a refId and the mismatches to emit.

Pure (no faust, no Kafka). The agent emits `findings` first and stores `entry` after: a crash in between
re-emits a mismatch (same eventId) rather than loses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hub_common.schemas import TransactionEvent
from hub_reconciler.compare import Finding, evaluate, is_expired
from hub_reconciler.models import Facts, JoinEntry, OperatorRecord


@dataclass(frozen=True)
class Step:
    entry: JoinEntry | None = None  # None: leave the table as it is
    delete: bool = False
    findings: list[Finding] = field(default_factory=list)


def _advance(entry: JoinEntry, *, now: float, grace_s: float) -> Step:
    findings = evaluate(entry, now=now, grace_s=grace_s)
    settled = entry.settled_at
    if settled is None and entry.hub is not None and entry.operator is not None:
        settled = now
    updated = entry.model_copy(
        update={"settled_at": settled, "reported": entry.reported + tuple(f.kind for f in findings)}
    )
    return Step(entry=updated, findings=findings)


def on_hub_event(current: JoinEntry | None, event: TransactionEvent, *, now: float, grace_s: float) -> Step:
    if not event.transaction.status.is_final:
        return Step()  # only final statuses are reconciled; PENDING/PROCESSING are in flight by definition
    facts = Facts.from_hub(event.transaction)
    base = current or JoinEntry(first_seen_at=now)
    return _advance(base.model_copy(update={"hub": facts}), now=now, grace_s=grace_s)


def on_operator_record(current: JoinEntry | None, record: OperatorRecord, *, now: float, grace_s: float) -> Step:
    facts = Facts.from_operator(record)
    if current is not None and current.operator == facts:
        return Step()  # the feed overlaps its windows: the same record arrives more than once
    base = current or JoinEntry(first_seen_at=now)
    return _advance(base.model_copy(update={"operator": facts}), now=now, grace_s=grace_s)


def on_tick(current: JoinEntry | None, *, now: float, grace_s: float, retention_s: float) -> Step:
    if current is None:
        return Step()
    if is_expired(current, now=now, retention_s=retention_s):
        return Step(delete=True)
    step = _advance(current, now=now, grace_s=grace_s)
    return step if step.findings else Step()
