"""A `transactions` row as the ledger and hubctl read it (its operator id: `hub_common.operator.ids`; its lease:
`hub_common.transitions`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from hub_common.schemas import ErrorCode, Transaction, TxStatus, TxType

COLUMNS = (
    "id, client_id, ref_id, type, player_id, amount_cents, currency, round_id, game_id, original_ref_id, "
    "status, reason, error_code, balance_cents, operator_transaction_id, correlation_id, attempts, "
    "created_at, updated_at, completed_at, replayed_at, operator_id, lease_owner, lease_token, lease_expires_at, "
    "send_by, possibly_sent_at"
)


@dataclass(frozen=True)
class TxRow:
    """One `transactions` row."""

    id: UUID
    client_id: str
    ref_id: str
    type: TxType
    player_id: str
    amount_cents: int
    currency: str
    round_id: str | None
    game_id: str | None
    original_ref_id: str | None
    status: TxStatus
    reason: str | None
    error_code: str | None
    balance_cents: int | None
    operator_transaction_id: str | None
    correlation_id: str | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    # When an SRE replayed it (`hubctl tx replay`): its deadline counts from here.
    replayed_at: datetime | None
    # The transactionId the operator knows it by (stored at admission; see hub_common.operator.ids).
    operator_id: str
    # Who works on it and until when; `lease_token` fences a former holder (hub_common.transitions).
    lease_owner: str | None = None
    lease_token: int = 0
    lease_expires_at: datetime | None = None
    # A BET's useful life (migration 007): unsent by then, it is REJECTED BET_EXPIRED.
    send_by: datetime | None = None
    # Set after a database restore (`hubctl recovery apply`, migration 010): the operator may have applied it although
    # the row says otherwise; the ledger asks the operator before deciding anything that assumes it was never sent.
    possibly_sent_at: datetime | None = None

    @classmethod
    def from_record(cls, r: Any) -> TxRow:
        """From any record holding (at least) the `COLUMNS`."""
        return cls(
            id=r["id"],
            client_id=r["client_id"],
            ref_id=r["ref_id"],
            type=TxType(r["type"]),
            player_id=r["player_id"],
            amount_cents=r["amount_cents"],
            currency=r["currency"],
            round_id=r["round_id"],
            game_id=r["game_id"],
            original_ref_id=r["original_ref_id"],
            status=TxStatus(r["status"]),
            reason=r["reason"],
            error_code=r["error_code"],
            balance_cents=r["balance_cents"],
            operator_transaction_id=r["operator_transaction_id"],
            correlation_id=r["correlation_id"],
            attempts=r["attempts"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            completed_at=r["completed_at"],
            replayed_at=r["replayed_at"],
            operator_id=r["operator_id"],
            lease_owner=r["lease_owner"],
            lease_token=r["lease_token"],
            lease_expires_at=r["lease_expires_at"],
            send_by=r["send_by"],
            possibly_sent_at=r["possibly_sent_at"],
        )

    def resource(self) -> Transaction:
        return resource_from_record(vars(self))


def resource_from_record(r: Any) -> Transaction:
    """The API's `Transaction` from a record (or a mapping) holding at least the resource's columns."""
    return Transaction(
        transaction_id=str(r["id"]),
        ref_id=r["ref_id"],
        type=r["type"],
        player_id=r["player_id"],
        amount_cents=r["amount_cents"],
        currency=r["currency"],
        round_id=r["round_id"],
        game_id=r["game_id"],
        original_ref_id=r["original_ref_id"],
        status=r["status"],
        reason=r["reason"],
        error_code=error_code(r["error_code"]),
        balance_cents=r["balance_cents"],
        operator_transaction_id=r["operator_transaction_id"],
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        completed_at=r["completed_at"],
    )


def error_code(value: str | None) -> ErrorCode | None:
    """A stored `error_code` as the API's code."""
    if value is None:
        return None
    try:
        return ErrorCode(value)
    except ValueError:
        return ErrorCode.INTERNAL_ERROR  # a code this build does not know (written by a newer one)
