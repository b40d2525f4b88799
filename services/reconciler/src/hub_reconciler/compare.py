"""The reconciliation rules, as pure functions: both the stream join and the date-range report use them."""

from __future__ import annotations

from dataclasses import dataclass

from hub_common.schemas import TxStatus
from hub_reconciler.models import Facts, JoinEntry, MismatchKind

OPERATOR_COMPLETED = "COMPLETED"


@dataclass(frozen=True)
class Finding:
    kind: MismatchKind
    detail: str


def compare(hub: Facts, operator: Facts) -> list[Finding]:
    """Differences between the Hub's final state of a refId and the operator's record of it."""
    findings: list[Finding] = []
    if hub.status == TxStatus.COMPLETED.value:
        if operator.status != OPERATOR_COMPLETED:
            findings.append(Finding(MismatchKind.STATUS_MISMATCH, f"hub COMPLETED, operator {operator.status}"))
    else:
        # The Hub settled it as REJECTED/FAILED, yet the wallet holds a record: money may have moved.
        findings.append(
            Finding(MismatchKind.STATUS_MISMATCH, f"hub {hub.status}, operator has a {operator.status} record")
        )
    if hub.amount_cents != operator.amount_cents:
        findings.append(
            Finding(
                MismatchKind.AMOUNT_MISMATCH,
                f"hub {hub.amount_cents} cents, operator {operator.amount_cents} cents",
            )
        )
    if hub.currency != operator.currency:
        findings.append(Finding(MismatchKind.CURRENCY_MISMATCH, f"hub {hub.currency}, operator {operator.currency}"))
    return findings


def one_sided(hub: Facts | None, operator: Facts | None) -> list[Finding]:
    """Findings for a refId that only one side knows (the caller decides it is no longer in flight)."""
    if hub is not None and operator is None and hub.status == TxStatus.COMPLETED.value:
        return [Finding(MismatchKind.MISSING_IN_OPERATOR, "hub COMPLETED, operator has no record")]
    if operator is not None and hub is None:
        return [Finding(MismatchKind.MISSING_IN_HUB, f"operator {operator.status}, hub has no final record")]
    # A REJECTED/FAILED transaction the operator never saw is consistent.
    return []


def evaluate(entry: JoinEntry, *, now: float, grace_s: float) -> list[Finding]:
    """New findings for a join entry: compared when both sides are known, one-sided only after the grace."""
    if entry.hub is not None and entry.operator is not None:
        found = compare(entry.hub, entry.operator)
    elif now - entry.first_seen_at >= grace_s:
        found = one_sided(entry.hub, entry.operator)
    else:
        found = []
    return [f for f in found if f.kind not in entry.reported]


def is_due(entry: JoinEntry, *, now: float, grace_s: float) -> bool:
    """True when a sweep would produce a finding for this entry now (the timer asks before ticking)."""
    if entry.settled_at is not None:
        return False
    return bool(evaluate(entry, now=now, grace_s=grace_s))


def is_expired(entry: JoinEntry, *, now: float, retention_s: float) -> bool:
    """Old enough to forget: settled, or one-sided (already reported, or consistent) for the whole retention."""
    since = entry.settled_at if entry.settled_at is not None else entry.first_seen_at
    return now - since >= retention_s
