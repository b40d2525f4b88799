"""Events of `hub.reconciliation.mismatches` (key: the operator id), published by the reconciler's continuous join.

`Mismatch/1` opens a finding; `MismatchResolved/1` closes one when later data (a late operator record, a
corrected amount, the Hub finishing a transaction) makes it disappear. eventIds are a function of (operator id,
kind, action, sequence number of the event for that id): a re-publication after a crash carries the same eventId.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from hub_common.reconciliation.rules import MismatchKind
from hub_common.schemas import WireModel

_EVENT_NAMESPACE = uuid.UUID("5f0c7a52-4b7e-4f57-9a7e-6a1f3d0c2b91")


class Side(WireModel):
    """What one side says about an operator id: the compared fields plus ids for the investigator."""

    status: str
    amount_cents: int | None = None
    currency: str | None = None
    transaction_id: str | None = None
    type: str | None = None


class Mismatch(WireModel):
    ref_id: str | None = None
    operator_id: str
    kind: MismatchKind
    detail: str
    hub: Side | None = None
    operator: Side | None = None
    detected_at: datetime


class MismatchResolved(WireModel):
    ref_id: str | None = None
    operator_id: str
    kind: MismatchKind
    # eventId of the Mismatch this closes.
    resolves: str
    detail: str
    resolved_at: datetime


def event_id(operator_id: str, kind: MismatchKind, action: str, sequence: int) -> str:
    return str(uuid.uuid5(_EVENT_NAMESPACE, f"{operator_id}\x00{kind.value}\x00{action}\x00{sequence}"))
