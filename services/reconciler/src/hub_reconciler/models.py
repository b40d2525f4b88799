"""Wire models owned by the reconciler: the operator feed record, the join state, and the Mismatch event."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from hub_common.schemas import Transaction, TxStatus, WireModel

# Fixed namespace: a mismatch's eventId is a function of (refId, kind), so a re-emission is recognisable.
_MISMATCH_NAMESPACE = uuid.UUID("5f0c7a52-4b7e-4f57-9a7e-6a1f3d0c2b91")


class MismatchKind(StrEnum):
    MISSING_IN_OPERATOR = "MISSING_IN_OPERATOR"
    MISSING_IN_HUB = "MISSING_IN_HUB"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    STATUS_MISMATCH = "STATUS_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"


class OperatorRecord(WireModel):
    """One item of the operator's report feed (`GET /v2/transactions?from=&to=`); payload on operator.transactions.

    Only the fields reconciliation needs are required; anything else the operator sends is ignored.
    """

    transaction_id: str
    amount_cents: int
    currency: str
    status: str
    operator_transaction_id: str | None = None
    player_id: str | None = None
    type: str | None = None
    created_at: datetime | None = None


class Facts(WireModel):
    """What one side says about a refId: just the fields that are compared, plus ids for the investigator."""

    status: str
    amount_cents: int
    currency: str
    transaction_id: str | None = None
    type: str | None = None
    player_id: str | None = None

    @classmethod
    def from_hub(cls, tx: Transaction) -> Facts:
        return cls(
            status=tx.status.value,
            amount_cents=tx.amount_cents,
            currency=tx.currency,
            transaction_id=tx.transaction_id,
            type=tx.type.value,
            player_id=tx.player_id,
        )

    @classmethod
    def from_operator(cls, record: OperatorRecord) -> Facts:
        return cls(
            status=record.status,
            amount_cents=record.amount_cents,
            currency=record.currency,
            transaction_id=record.operator_transaction_id,
            type=record.type,
            player_id=record.player_id,
        )


class JoinEntry(WireModel):
    """The join state of one refId, stored in the faust table (as a JSON dict)."""

    hub: Facts | None = None
    operator: Facts | None = None
    # Epoch seconds, reconciler clock: the grace window runs from when we first saw either side.
    first_seen_at: float
    settled_at: float | None = None
    reported: tuple[MismatchKind, ...] = ()


class Mismatch(WireModel):
    """Payload of hub.reconciliation.mismatches (key refId): one per refId and kind."""

    ref_id: str
    kind: MismatchKind
    detail: str
    hub: Facts | None = None
    operator: Facts | None = None
    detected_at: datetime


class SweepTick(WireModel):
    """Internal: asks the join agent to re-evaluate a refId (faust tables change only inside the stream)."""

    ref_id: str


def mismatch_event_id(ref_id: str, kind: MismatchKind) -> str:
    return str(uuid.uuid5(_MISMATCH_NAMESPACE, f"{ref_id}\x00{kind.value}"))


FINAL_STATUSES = frozenset(s for s in TxStatus if s.is_final)
