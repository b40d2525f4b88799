"""The mock wallet: balances, idempotent transactions, refunds, and the report feed.

Only applied transactions are stored: a refused one (unknown player, funds, currency) changes nothing, so a
retry is judged afresh and `GET /v2/transactions?transactionId=` answers 404 for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from hub_common.schemas import TxType
from mock_operator.errors import (
    CurrencyMismatchError,
    InsufficientFundsError,
    InvalidRequestError,
    PlayerNotFoundError,
    TransactionConflictError,
    TransactionNotFoundError,
)
from mock_operator.models import (
    BalanceOut,
    FeedPage,
    OperatorRecord,
    PlayerSeed,
    RecordChange,
    RecordSeed,
    TransactionIn,
)

Clock = Callable[[], float]

# The fields that make two submissions "the same transaction" (idempotency compares these, not raw bytes).
_IDENTITY_FIELDS = ("player_id", "type", "amount_cents", "currency", "round_id", "game_id", "original_transaction_id")


@dataclass
class Player:
    player_id: str
    balance_cents: int
    currency: str


def same_transaction(record: OperatorRecord, tx: TransactionIn) -> bool:
    return all(getattr(record, name) == getattr(tx, name) for name in _IDENTITY_FIELDS)


class Wallet:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._players: dict[str, Player] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._log: list[OperatorRecord] = []
        # Log positions of records lost on purpose (`lose_record`): skipped by the feed and the ledger view.
        self._lost: set[int] = set()
        self._by_id: dict[str, OperatorRecord] = {}
        self._apply_counts: dict[str, int] = {}
        # original transactionId -> the REFUND that reversed it; a second refund must not pay out again.
        self._reversed_by: dict[str, str] = {}

    def seed(self, players: Iterable[PlayerSeed]) -> None:
        for seed in players:
            self._players[seed.player_id] = Player(seed.player_id, seed.balance_cents, seed.currency)

    def player(self, player_id: str) -> Player:
        player = self._players.get(player_id)
        if player is None:
            raise PlayerNotFoundError(player_id)
        return player

    def balance(self, player_id: str) -> BalanceOut:
        player = self.player(player_id)
        return BalanceOut(balance_cents=player.balance_cents, currency=player.currency)

    async def submit(self, tx: TransactionIn) -> OperatorRecord:
        # One player's transactions are serialised, as a real wallet's row lock would.
        lock = self._locks.setdefault(tx.player_id, asyncio.Lock())
        async with lock:
            return self.apply(tx)

    def apply(self, tx: TransactionIn) -> OperatorRecord:
        existing = self._by_id.get(tx.transaction_id)
        if existing is not None:
            if same_transaction(existing, tx):
                return existing
            raise TransactionConflictError(tx.transaction_id)
        player = self.player(tx.player_id)
        if tx.currency != player.currency:
            raise CurrencyMismatchError(player.player_id, player.currency, tx.currency)
        delta = self._delta(tx, player)
        if delta < 0 and player.balance_cents + delta < 0:
            raise InsufficientFundsError(player.player_id, player.balance_cents, -delta)
        player.balance_cents += delta
        if tx.type is TxType.REFUND and tx.original_transaction_id is not None:
            self._reversed_by.setdefault(tx.original_transaction_id, tx.transaction_id)
        record = OperatorRecord(
            transaction_id=tx.transaction_id,
            operator_transaction_id=f"op-{uuid.uuid4().hex}",
            player_id=tx.player_id,
            type=tx.type,
            amount_cents=tx.amount_cents,
            currency=tx.currency,
            round_id=tx.round_id,
            game_id=tx.game_id,
            original_transaction_id=tx.original_transaction_id,
            balance_cents=player.balance_cents,
            created_at=datetime.fromtimestamp(self._clock(), UTC),
        )
        self._log.append(record)
        self._by_id[tx.transaction_id] = record
        self._apply_counts[tx.transaction_id] = self._apply_counts.get(tx.transaction_id, 0) + 1
        return record

    def _delta(self, tx: TransactionIn, player: Player) -> int:
        if tx.type is TxType.BET:
            return -tx.amount_cents
        if tx.type is TxType.WIN:
            return tx.amount_cents
        return self._refund_delta(tx, player)

    def _refund_delta(self, tx: TransactionIn, player: Player) -> int:
        if not tx.original_transaction_id:
            raise InvalidRequestError("originalTransactionId is required for a REFUND")
        original = self._by_id.get(tx.original_transaction_id)
        # Industry practice: refunding an unknown bet succeeds with no balance effect (the bet never landed),
        # and refunding an already reversed one does not pay out twice.
        if original is None or tx.original_transaction_id in self._reversed_by:
            return 0
        if original.player_id != player.player_id:
            raise InvalidRequestError("originalTransactionId belongs to another player")
        if original.type is TxType.REFUND:
            raise InvalidRequestError("a REFUND cannot be refunded")
        # The original's amount is reversed, whatever the request says: the wallet trusts its own record.
        return original.amount_cents if original.type is TxType.BET else -original.amount_cents

    def add_record(self, seed: RecordSeed) -> OperatorRecord:
        """An operator-only record (the Hub never sent it): logged and fed, balances untouched."""
        if seed.transaction_id in self._by_id:
            raise TransactionConflictError(seed.transaction_id)
        player = self._players.get(seed.player_id)
        record = OperatorRecord(
            transaction_id=seed.transaction_id,
            operator_transaction_id=f"op-{uuid.uuid4().hex}",
            player_id=seed.player_id,
            type=seed.type,
            amount_cents=seed.amount_cents,
            currency=seed.currency,
            round_id=seed.round_id,
            game_id=seed.game_id,
            original_transaction_id=seed.original_transaction_id,
            status=seed.status,
            balance_cents=player.balance_cents if player is not None else 0,
            created_at=seed.created_at or datetime.fromtimestamp(self._clock(), UTC),
        )
        self._log.append(record)
        self._by_id[record.transaction_id] = record
        return record

    def alter_record(self, transaction_id: str, change: RecordChange) -> OperatorRecord:
        """Rewrite a stored record in place (same feed position), as a bad operator-side correction would."""
        record = self.record(transaction_id)
        updates = change.model_dump(exclude_none=True)
        altered = record.model_copy(update=updates)
        self._by_id[transaction_id] = altered
        self._log[self._log.index(record)] = altered
        return altered

    def lose_record(self, transaction_id: str) -> OperatorRecord:
        """Forget a stored record, as an operator that lost one would: gone from lookups and the feed, balances
        untouched. Its log slot stays empty, so the feed's cursors (positions in the log) keep their meaning."""
        record = self.record(transaction_id)
        del self._by_id[transaction_id]
        self._lost.add(self._log.index(record))
        return record

    def record(self, transaction_id: str) -> OperatorRecord:
        record = self._by_id.get(transaction_id)
        if record is None:
            raise TransactionNotFoundError(transaction_id)
        return record

    def feed(self, *, start: datetime | None, end: datetime | None, cursor: str | None, limit: int) -> FeedPage:
        """Records with `start <= createdAt < end` in log order; the cursor is a position in the append-only log."""
        position = _parse_cursor(cursor, len(self._log))
        items: list[OperatorRecord] = []
        next_cursor: str | None = None
        for index in range(position, len(self._log)):
            record = self._log[index]
            if index in self._lost:
                continue
            if (start is not None and record.created_at < start) or (end is not None and record.created_at >= end):
                continue
            if len(items) == limit:
                next_cursor = str(index)
                break
            items.append(record)
        return FeedPage(items=items, next_cursor=next_cursor)

    def records(self) -> list[OperatorRecord]:
        return [r for i, r in enumerate(self._log) if i not in self._lost]

    def apply_counts(self) -> dict[str, int]:
        return dict(self._apply_counts)

    def reset(self) -> None:
        self._players.clear()
        self._locks.clear()
        self._log.clear()
        self._lost.clear()
        self._by_id.clear()
        self._apply_counts.clear()
        self._reversed_by.clear()


def _parse_cursor(cursor: str | None, size: int) -> int:
    if cursor is None or cursor == "":
        return 0
    if not cursor.isdigit() or int(cursor) > size:
        raise InvalidRequestError("cursor is not one this feed issued")
    return int(cursor)
