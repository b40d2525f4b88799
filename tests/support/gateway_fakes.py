"""In-memory stand-ins for the gateway's services: unit tests exercise HTTP, auth and validation only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import SecretStr

from hub_common.errors import HubError
from hub_common.schemas import Balance, ErrorCode, Transaction, TransactionRequest, TxStatus
from hub_gateway.errors import TransactionNotFoundError
from hub_gateway.service import Outcome

CLIENT_ID = "rgs-a"
OLD_SECRET = SecretStr("old-secret-a")
NEW_SECRET = SecretStr("new-secret-a")
OTHER_CLIENT = "rgs-b"
OTHER_SECRET = SecretStr("secret-b")

CREATED = datetime(2024, 1, 15, 12, 0, tzinfo=UTC)


def transaction_for(request: TransactionRequest, status: TxStatus = TxStatus.COMPLETED, **extra: object) -> Transaction:
    values: dict[str, object] = {
        "transaction_id": "00000000-0000-4000-8000-000000000001",
        "ref_id": request.ref_id,
        "type": request.type,
        "player_id": request.player_id,
        "amount_cents": request.amount_cents,
        "currency": request.currency,
        "round_id": request.round_id,
        "game_id": request.game_id,
        "original_ref_id": request.original_ref_id,
        "status": status,
        "created_at": CREATED,
        "updated_at": CREATED,
        **extra,
    }
    return Transaction.model_validate(values)


@dataclass
class Submitted:
    client_id: str
    key: str
    request: TransactionRequest
    correlation_id: str


@dataclass
class FakeTransactions:
    """Answers every submission with `status`/`error_code`, or raises `error`."""

    status: TxStatus = TxStatus.COMPLETED
    error_code: ErrorCode | None = None
    replayed: bool = False
    error: HubError | None = None
    submitted: list[Submitted] = field(default_factory=list)
    stored: dict[tuple[str, str], Transaction] = field(default_factory=dict)

    async def submit(self, client_id: str, key: str, request: TransactionRequest, correlation_id: str) -> Outcome:
        self.submitted.append(Submitted(client_id, key, request, correlation_id))
        if self.error is not None:
            raise self.error
        transaction = transaction_for(request, self.status)
        self.stored[(client_id, request.ref_id)] = transaction
        return Outcome(transaction, self.error_code, replayed=self.replayed)

    async def get(self, client_id: str, ref_id: str) -> Transaction:
        try:
            return self.stored[(client_id, ref_id)]
        except KeyError:
            raise TransactionNotFoundError(ref_id) from None


@dataclass
class FakeBalances:
    balances: dict[str, Balance] = field(default_factory=dict)

    async def balance(self, client_id: str, player_id: str, correlation_id: str) -> Balance:
        return self.balances[player_id]
