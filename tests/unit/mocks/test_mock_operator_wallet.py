from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from hub_common.schemas import TxType
from mock_operator.errors import (
    CurrencyMismatchError,
    InsufficientFundsError,
    InvalidRequestError,
    PlayerNotFoundError,
    TransactionConflictError,
    TransactionNotFoundError,
)
from mock_operator.models import PlayerSeed, TransactionIn
from mock_operator.settings import MockOperatorSettings
from mock_operator.wallet import Wallet


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def tx(transaction_id: str, type_: TxType = TxType.BET, amount: int = 100, **extra: Any) -> TransactionIn:
    fields: dict[str, Any] = {"player_id": "p-1", "currency": "EUR", "round_id": "r-1", "game_id": "g-1"}
    fields.update(extra)
    return TransactionIn(transaction_id=transaction_id, type=type_, amount_cents=amount, **fields)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def wallet(clock: Clock) -> Wallet:
    w = Wallet(clock)
    w.seed([PlayerSeed(player_id="p-1", balance_cents=1000, currency="EUR")])
    return w


def test_bet_debits_and_win_credits(wallet: Wallet) -> None:
    assert wallet.apply(tx("b-1", amount=300)).balance_cents == 700
    record = wallet.apply(tx("w-1", TxType.WIN, 50))
    assert record.balance_cents == 750
    assert record.status == "COMPLETED"
    assert record.operator_transaction_id.startswith("op-")
    assert wallet.balance("p-1").balance_cents == 750


def test_same_transaction_replays_the_stored_answer_without_applying_again(wallet: Wallet) -> None:
    first = wallet.apply(tx("b-1", amount=300))
    wallet.apply(tx("w-1", TxType.WIN, 50))
    again = wallet.apply(tx("b-1", amount=300))
    assert again == first  # same operatorTransactionId and the balance of the original answer
    assert wallet.balance("p-1").balance_cents == 750
    assert wallet.apply_counts() == {"b-1": 1, "w-1": 1}


@pytest.mark.parametrize(
    "changed",
    [{"amount": 301}, {"type_": TxType.WIN}, {"currency": "USD"}, {"round_id": "r-2"}, {"player_id": "p-2"}],
)
def test_same_id_with_another_body_is_a_conflict(wallet: Wallet, changed: dict[str, Any]) -> None:
    wallet.apply(tx("b-1", amount=300))
    args: dict[str, Any] = {"amount": 300} | changed
    with pytest.raises(TransactionConflictError):
        wallet.apply(tx("b-1", **args))
    assert wallet.balance("p-1").balance_cents == 700


def test_insufficient_funds_carries_the_balance_and_changes_nothing(wallet: Wallet) -> None:
    with pytest.raises(InsufficientFundsError) as info:
        wallet.apply(tx("b-1", amount=1001))
    assert info.value.balance_cents == 1000
    assert wallet.records() == []
    # A refused transaction is not stored: once funded, the same id goes through.
    wallet.apply(tx("w-1", TxType.WIN, 1))
    assert wallet.apply(tx("b-1", amount=1001)).balance_cents == 0


def test_unknown_player_and_wrong_currency_are_refused(wallet: Wallet) -> None:
    with pytest.raises(PlayerNotFoundError):
        wallet.apply(tx("b-1", player_id="nobody"))
    with pytest.raises(CurrencyMismatchError):
        wallet.apply(tx("b-2", currency="USD"))
    with pytest.raises(PlayerNotFoundError):
        wallet.balance("nobody")


def test_refund_reverses_the_bet_once(wallet: Wallet) -> None:
    wallet.apply(tx("b-1", amount=300))
    assert wallet.apply(tx("rf-1", TxType.REFUND, 300, original_transaction_id="b-1")).balance_cents == 1000
    # Another REFUND of the same bet (new id) must not pay out again.
    assert wallet.apply(tx("rf-2", TxType.REFUND, 300, original_transaction_id="b-1")).balance_cents == 1000
    assert wallet.apply_counts() == {"b-1": 1, "rf-1": 1, "rf-2": 1}


def test_refund_of_an_unknown_bet_succeeds_without_balance_effect(wallet: Wallet) -> None:
    record = wallet.apply(tx("rf-1", TxType.REFUND, 300, original_transaction_id="never-seen"))
    assert record.balance_cents == 1000
    assert wallet.record("rf-1") == record


def test_refund_reverses_the_original_amount_and_a_win_too(wallet: Wallet) -> None:
    wallet.apply(tx("b-1", amount=300))
    assert wallet.apply(tx("rf-1", TxType.REFUND, 1, original_transaction_id="b-1")).balance_cents == 1000
    wallet.apply(tx("w-1", TxType.WIN, 200))
    assert wallet.apply(tx("rf-2", TxType.REFUND, 200, original_transaction_id="w-1")).balance_cents == 1000


@pytest.mark.parametrize("original", [None, "rf-0"])
def test_invalid_refunds_are_refused(wallet: Wallet, original: str | None) -> None:
    wallet.apply(tx("rf-0", TxType.REFUND, 0, original_transaction_id="ghost"))
    with pytest.raises(InvalidRequestError):
        wallet.apply(tx("rf-1", TxType.REFUND, 0, original_transaction_id=original))


def test_refund_of_another_players_transaction_is_refused(wallet: Wallet) -> None:
    wallet.seed([PlayerSeed(player_id="p-2", balance_cents=0, currency="EUR")])
    wallet.apply(tx("b-1", amount=300))
    with pytest.raises(InvalidRequestError):
        wallet.apply(tx("rf-1", TxType.REFUND, 300, original_transaction_id="b-1", player_id="p-2"))


def test_record_lookup(wallet: Wallet) -> None:
    with pytest.raises(TransactionNotFoundError):
        wallet.record("b-1")
    assert wallet.record(wallet.apply(tx("b-1")).transaction_id).amount_cents == 100


def test_feed_pages_with_a_stable_cursor_and_filters_by_time(wallet: Wallet, clock: Clock) -> None:
    for i in range(5):
        clock.now = 1_700_000_000.0 + i * 10
        wallet.apply(tx(f"w-{i}", TxType.WIN, 1))
    start = datetime.fromtimestamp(1_700_000_010, UTC)
    end = datetime.fromtimestamp(1_700_000_040, UTC)
    page = wallet.feed(start=start, end=end, cursor=None, limit=2)
    assert [r.transaction_id for r in page.items] == ["w-1", "w-2"]
    assert page.next_cursor is not None
    wallet.apply(tx("w-late", TxType.WIN, 1))  # appended records do not shift the cursor
    rest = wallet.feed(start=start, end=end, cursor=page.next_cursor, limit=2)
    assert [r.transaction_id for r in rest.items] == ["w-3"]
    assert rest.next_cursor is None
    everything = wallet.feed(start=None, end=None, cursor=None, limit=1000)
    assert len(everything.items) == 6


@pytest.mark.parametrize("cursor", ["abc", "-1", "99"])
def test_feed_refuses_a_foreign_cursor(wallet: Wallet, cursor: str) -> None:
    with pytest.raises(InvalidRequestError):
        wallet.feed(start=None, end=None, cursor=cursor, limit=10)


async def test_concurrent_bets_of_one_player_never_overdraw(wallet: Wallet) -> None:
    results = await asyncio.gather(*(wallet.submit(tx(f"b-{i}", amount=300)) for i in range(5)), return_exceptions=True)
    completed = [r for r in results if not isinstance(r, BaseException)]
    assert len(completed) == 3
    assert all(isinstance(r, InsufficientFundsError) for r in results if isinstance(r, BaseException))
    assert wallet.balance("p-1").balance_cents == 100


def test_reset_forgets_everything(wallet: Wallet) -> None:
    wallet.apply(tx("b-1"))
    wallet.reset()
    assert wallet.records() == []
    assert wallet.apply_counts() == {}
    with pytest.raises(PlayerNotFoundError):
        wallet.player("p-1")


def test_settings_read_players_and_require_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        MockOperatorSettings()
    monkeypatch.setenv("MOCK_OPERATOR_SECRET", "s")
    monkeypatch.setenv("MOCK_OPERATOR_PLAYERS", '[{"playerId": "p-1", "balanceCents": 5, "currency": "EUR"}]')
    monkeypatch.setenv("MOCK_OPERATOR_RATE_LIMIT_PER_MINUTE", "7")
    settings = MockOperatorSettings()
    assert settings.players == [PlayerSeed(player_id="p-1", balance_cents=5, currency="EUR")]
    assert (settings.rate_limit_per_minute, settings.port) == (7, 3001)
