"""Wire models of the contract: RGS request, the payload of every Kafka topic, the Transaction resource.

Field names are camelCase on the wire (the contract's), snake_case in Python.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator
from pydantic.alias_generators import to_camel

METADATA_MAX_BYTES = 4096


class TxType(StrEnum):
    BET = "BET"
    WIN = "WIN"
    REFUND = "REFUND"


class TxStatus(StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    REJECTED = "REJECTED"
    FAILED = "FAILED"

    @property
    def is_final(self) -> bool:
        return self in (TxStatus.COMPLETED, TxStatus.REJECTED, TxStatus.FAILED)


class ErrorCode(StrEnum):
    INVALID_REQUEST = "INVALID_REQUEST"
    INVALID_SIGNATURE = "INVALID_SIGNATURE"
    UNKNOWN_CLIENT = "UNKNOWN_CLIENT"
    STALE_TIMESTAMP = "STALE_TIMESTAMP"
    PLAYER_NOT_FOUND = "PLAYER_NOT_FOUND"
    TRANSACTION_NOT_FOUND = "TRANSACTION_NOT_FOUND"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    DUPLICATE_REF_ID = "DUPLICATE_REF_ID"
    REQUEST_IN_PROGRESS = "REQUEST_IN_PROGRESS"
    UNSUPPORTED_CURRENCY = "UNSUPPORTED_CURRENCY"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"
    BET_NOT_FOUND = "BET_NOT_FOUND"
    BET_ALREADY_SETTLED = "BET_ALREADY_SETTLED"
    BET_ALREADY_REFUNDED = "BET_ALREADY_REFUNDED"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    BET_EXPIRED = "BET_EXPIRED"
    RATE_LIMITED = "RATE_LIMITED"
    OPERATOR_UNAVAILABLE = "OPERATOR_UNAVAILABLE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_ERROR = "INTERNAL_ERROR"


class WireModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _metadata_size(value: dict[str, Any]) -> dict[str, Any]:
    if len(orjson.dumps(value)) > METADATA_MAX_BYTES:
        raise ValueError(f"metadata must be at most {METADATA_MAX_BYTES} bytes as JSON")
    return value


Text = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]

# An RGS client id: letters, digits, `.`, `_`, `-`, starting with a letter or digit, at most 64 characters, never
# `cancel`. No `:`, so the operator id `{clientId}:{refId}` splits one way only, and no client's operator ids can
# look like a cancel (`cancel:...`); see hub_common.operator.ids.
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_CLIENT_ID = re.compile(CLIENT_ID_PATTERN)
RESERVED_CLIENT_IDS = frozenset({"cancel"})


def client_id_problem(client_id: str) -> str | None:
    """Why `client_id` cannot be an RGS client id (None: it can)."""
    if not _CLIENT_ID.match(client_id):
        return "a client id is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
    if client_id in RESERVED_CLIENT_IDS:
        return f"{client_id!r} is reserved (operator ids of cancels start with it)"
    return None


def _client_id(value: str) -> str:
    if (problem := client_id_problem(value)) is not None:
        raise ValueError(problem)
    return value


ClientId = Annotated[str, AfterValidator(_client_id)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]


class TransactionRequest(WireModel):
    """Body of `POST /v1/transactions`. Unknown fields are rejected, not dropped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=False, frozen=True, extra="forbid")

    ref_id: Text
    type: TxType
    player_id: Text
    amount_cents: StrictInt = Field(ge=0, le=10**15)
    currency: Currency
    round_id: Text | None = None
    game_id: Text | None = None
    original_ref_id: Text | None = None
    round_closed: StrictBool = False
    metadata: Annotated[dict[str, Any], AfterValidator(_metadata_size)] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _type_rules(self) -> TransactionRequest:
        if self.type is TxType.BET and self.amount_cents <= 0:
            raise ValueError("amountCents must be greater than 0 for a BET")
        if self.type is TxType.REFUND and not self.original_ref_id:
            raise ValueError("originalRefId is required for a REFUND")
        return self


class TransactionCommand(WireModel):
    """Payload of `hub.commands` (key: playerId): an admitted request for the ledger."""

    transaction_id: str
    # Checked here too: the ledger stores the operator id derived from it (hub_common.operator.ids).
    client_id: ClientId
    idempotency_key: str | None
    request_hash: str
    ref_id: str
    type: TxType
    player_id: str
    amount_cents: int
    currency: str
    round_id: str | None = None
    game_id: str | None = None
    original_ref_id: str | None = None
    round_closed: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    admitted_at: datetime
    # A BET's useful life: not sent to the operator after this moment (REJECTED BET_EXPIRED instead).
    send_by: datetime | None = None
    # The id the operator knows it by, derived once at admission (hub_common.operator.ids) and stored on the row:
    # a row re-created from the command (a lost commit, a database restore) gets the id the operator saw. None: a
    # command of a release before migration 008, sent under its bare refId (`ids.command_operator_id`).
    operator_id: str | None = None


class Transaction(WireModel):
    """The Transaction resource of the contract (HTTP responses, events, webhooks)."""

    transaction_id: str
    ref_id: str
    type: TxType
    player_id: str
    amount_cents: int
    currency: str
    round_id: str | None = None
    game_id: str | None = None
    original_ref_id: str | None = None
    status: TxStatus
    reason: str | None = None
    # The contract's error code of a REJECTED or FAILED transaction (what a replayed POST answers with).
    error_code: ErrorCode | None = None
    balance_cents: int | None = None
    operator_transaction_id: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None


class AcceptedTransaction(Transaction):
    """The body of a 202: the transaction, and when the Hub expects it to reach the operator."""

    # Seconds from the answer until the transaction is expected to reach the operator (the gateway's forecast).
    predicted_wait_s: float


class TransactionEvent(WireModel):
    """Payload of `hub.transactions`: one state transition. `error_code` is set for REJECTED/FAILED."""

    client_id: str
    error_code: ErrorCode | None = None
    transaction: Transaction


EventType = Literal["transaction.completed", "transaction.rejected", "transaction.failed"]

EVENT_TYPES: dict[TxStatus, EventType] = {
    TxStatus.COMPLETED: "transaction.completed",
    TxStatus.REJECTED: "transaction.rejected",
    TxStatus.FAILED: "transaction.failed",
}


class WebhookBody(WireModel):
    """Body of a result webhook (contract section 4)."""

    event_id: str
    event_type: EventType
    occurred_at: datetime
    data: Transaction


# Records of the webhook topics (`hub.webhooks.retry.<tier>`, `hub.webhooks.dlq`): the dispatcher writes them,
# hubctl reads and re-publishes them. `webhook_outbox` stays the source of truth for status and history.
class Outcome(StrEnum):
    """What one delivery attempt led to."""

    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD_LETTER = "dead_letter"


class Attempt(WireModel):
    """One delivery attempt as kept in `webhook_outbox.attempts` and in the dead letter."""

    attempt: int
    at: datetime
    status: int | None = None
    latency_ms: float
    error: str | None = None
    response: str | None = None
    outcome: Outcome
    replay: bool = False
    # True when the endpoint's circuit was open and no HTTP call was made.
    skipped: bool = False


class WebhookRetry(WireModel):
    """A delivery waiting on `hub.webhooks.retry.<tier>` until `due_at`; `attempt` is the one to make."""

    event_id: str
    client_id: str
    event_type: str
    attempt: int
    due_at: datetime
    replay: bool = False


class WebhookDeadLetter(WireModel):
    """An exhausted or non-retryable delivery on `hub.webhooks.dlq`, with its whole history."""

    event_id: str
    client_id: str
    event_type: str
    transaction_id: str | None
    reason: str
    retry_count: int
    body: dict[str, Any]
    attempts: list[Attempt]
    dead_lettered_at: datetime


class ErrorDetail(WireModel):
    field: str
    message: str


class ErrorInfo(WireModel):
    code: ErrorCode
    message: str
    retryable: bool
    correlation_id: str
    details: list[ErrorDetail] = Field(default_factory=list)
    balance_cents: int | None = None


class ErrorBody(WireModel):
    error: ErrorInfo


class Balance(WireModel):
    player_id: str
    balance_cents: int
    currency: str
