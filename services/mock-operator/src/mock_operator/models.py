"""Wire models of the mock operator: the `/v2` API (contract section 3) and the admin API.

Shared by the server and `admin_client`, so both sides agree on one shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictInt
from pydantic.alias_generators import to_camel

from hub_common.schemas import TxType, WireModel

Id = Annotated[str, Field(min_length=1, max_length=255)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


class PlayerSeed(WireModel):
    player_id: Id
    balance_cents: StrictInt = Field(ge=0)
    currency: Currency


class PlayersIn(WireModel):
    players: list[PlayerSeed]


class TransactionIn(WireModel):
    """Body of `POST /v2/transactions`; unknown fields are ignored, as a tolerant wallet would."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    transaction_id: Id
    player_id: Id
    type: TxType
    amount_cents: StrictInt = Field(ge=0)
    currency: Currency
    round_id: str | None = None
    game_id: str | None = None
    original_transaction_id: str | None = None


class OperatorRecord(WireModel):
    """One applied transaction as the operator keeps it (also an item of the report feed)."""

    transaction_id: str
    operator_transaction_id: str
    player_id: str
    type: TxType
    amount_cents: int
    currency: str
    round_id: str | None
    game_id: str | None
    original_transaction_id: str | None
    # COMPLETED for everything the wallet applied; the admin API may set any other status (a reversal, ...).
    status: str = "COMPLETED"
    balance_cents: int
    created_at: datetime


class TransactionResult(WireModel):
    transaction_id: str
    operator_transaction_id: str
    status: Literal["COMPLETED"] = "COMPLETED"
    balance_cents: int


class BalanceOut(WireModel):
    balance_cents: int
    currency: str


class FeedPage(WireModel):
    items: list[OperatorRecord]
    next_cursor: str | None


class FaultConfig(WireModel):
    """Faults injected into `/v2` calls (all off by default). Rates are probabilities per call."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    latency_ms: StrictInt = Field(default=0, ge=0)
    error_rate: Rate = 0.0
    error_status: StrictInt = Field(default=503, ge=500, le=599)
    timeout_after_apply_rate: Rate = 0.0
    # How long a timeout-after-apply call hangs before the connection is dropped; settings default when None.
    hang_ms: StrictInt | None = Field(default=None, ge=0)
    drop_rate: Rate = 0.0
    force429: StrictInt = Field(default=0, ge=0)
    retry_after_s: StrictInt = Field(default=1, ge=0)
    seed: StrictInt | None = None


class RecordSeed(WireModel):
    """An operator-only record (`POST /_admin/records`): in the ledger and the feed, no balance effect."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    transaction_id: Id
    player_id: Id = "unknown"
    type: TxType = TxType.BET
    amount_cents: StrictInt = Field(ge=0)
    currency: Currency
    status: Annotated[str, Field(min_length=1, max_length=40)] = "COMPLETED"
    round_id: str | None = None
    game_id: str | None = None
    original_transaction_id: str | None = None
    created_at: datetime | None = None


class RecordsIn(WireModel):
    records: list[RecordSeed]


class RecordChange(WireModel):
    """`PATCH /_admin/records/{transactionId}`: what to alter in a stored record (the balance is not touched)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    amount_cents: StrictInt | None = Field(default=None, ge=0)
    currency: Currency | None = None
    status: Annotated[str, Field(min_length=1, max_length=40)] | None = None


class ConfigIn(WireModel):
    rate_limit_per_minute: StrictInt = Field(ge=1)


class ConfigOut(WireModel):
    rate_limit_per_minute: int


class MinuteCount(WireModel):
    minute: datetime
    count: int
    accepted: int
    rejected429: int


class StatsOut(WireModel):
    total_calls: int
    accepted: int
    rejected429: int
    max_in_any_sixty_seconds: int
    rate_limit_per_minute: int
    calls_per_minute: list[MinuteCount]
    by_endpoint: dict[str, int]
    faults: dict[str, int]


class LedgerOut(WireModel):
    transactions: list[OperatorRecord]
    apply_counts: dict[str, int]
