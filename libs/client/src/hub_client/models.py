"""The contract's resources as plain dataclasses (camelCase on the wire, snake_case here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

TxType = Literal["BET", "WIN", "REFUND"]
FINAL_STATUSES = frozenset({"COMPLETED", "REJECTED", "FAILED"})


def parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class TransactionRequest:
    """Body of `POST /v1/transactions`. Build one with `bet`, `win` or `refund`."""

    type: TxType
    ref_id: str
    player_id: str
    amount_cents: int
    currency: str
    round_id: str | None = None
    game_id: str | None = None
    original_ref_id: str | None = None
    round_closed: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "refId": self.ref_id,
            "type": self.type,
            "playerId": self.player_id,
            "amountCents": self.amount_cents,
            "currency": self.currency,
            "roundId": self.round_id,
            "gameId": self.game_id,
            "originalRefId": self.original_ref_id,
            "roundClosed": self.round_closed,
            "metadata": self.metadata,
        }
        return body


def bet(ref_id: str, player_id: str, amount_cents: int, currency: str, **optional: Any) -> TransactionRequest:
    """A debit. `optional`: round_id, game_id, round_closed, metadata."""
    return TransactionRequest("BET", ref_id, player_id, amount_cents, currency, **optional)


def win(ref_id: str, player_id: str, amount_cents: int, currency: str, **optional: Any) -> TransactionRequest:
    """A credit. `optional`: round_id, game_id, round_closed, metadata."""
    return TransactionRequest("WIN", ref_id, player_id, amount_cents, currency, **optional)


def refund(
    ref_id: str, original_ref_id: str, player_id: str, amount_cents: int, currency: str, **optional: Any
) -> TransactionRequest:
    """Cancels the BET `original_ref_id` (same amount)."""
    return TransactionRequest(
        "REFUND", ref_id, player_id, amount_cents, currency, original_ref_id=original_ref_id, **optional
    )


@dataclass(frozen=True)
class Transaction:
    """The Transaction resource: answers, `GET /v1/transactions/{refId}`, and the `data` of a webhook."""

    transaction_id: str
    ref_id: str
    type: str
    player_id: str
    amount_cents: int
    currency: str
    status: str
    round_id: str | None = None
    game_id: str | None = None
    original_ref_id: str | None = None
    reason: str | None = None
    # REJECTED or FAILED: the contract's error code (e.g. INSUFFICIENT_FUNDS, BET_EXPIRED).
    error_code: str | None = None
    balance_cents: int | None = None
    operator_transaction_id: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    # On a 202 answer: seconds until the Hub expects the transaction to reach the operator.
    predicted_wait_s: float | None = None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Transaction:
        return cls(
            transaction_id=body["transactionId"],
            ref_id=body["refId"],
            type=body["type"],
            player_id=body["playerId"],
            amount_cents=body["amountCents"],
            currency=body["currency"],
            status=body["status"],
            round_id=body.get("roundId"),
            game_id=body.get("gameId"),
            original_ref_id=body.get("originalRefId"),
            reason=body.get("reason"),
            error_code=body.get("errorCode"),
            balance_cents=body.get("balanceCents"),
            operator_transaction_id=body.get("operatorTransactionId"),
            created_at=parse_time(body.get("createdAt")),
            updated_at=parse_time(body.get("updatedAt")),
            completed_at=parse_time(body.get("completedAt")),
            predicted_wait_s=body.get("predictedWaitS"),
        )


@dataclass(frozen=True)
class Balance:
    player_id: str
    balance_cents: int
    currency: str


@dataclass(frozen=True)
class WebhookEvent:
    """A verified result webhook. `event_id` is stable across retries and replays: deduplicate on it."""

    event_id: str
    event_type: str
    occurred_at: datetime | None
    transaction: Transaction
    attempt: int
    replay: bool
