"""Domain errors of the mock wallet; `http_errors` maps them to the operator's HTTP answers."""

from __future__ import annotations

from hub_common.errors import HubError


class WalletError(HubError):
    """A transaction the wallet refuses; `code` is the operator's error code."""

    code = "WALLET_ERROR"


class PlayerNotFoundError(WalletError):
    code = "PLAYER_NOT_FOUND"

    def __init__(self, player_id: str) -> None:
        super().__init__(f"player {player_id!r} does not exist", player_id=player_id)
        self.player_id = player_id


class InsufficientFundsError(WalletError):
    code = "INSUFFICIENT_FUNDS"

    def __init__(self, player_id: str, balance_cents: int, amount_cents: int) -> None:
        super().__init__(
            f"balance {balance_cents} is below the debit of {amount_cents}",
            player_id=player_id,
            balance_cents=balance_cents,
        )
        self.balance_cents = balance_cents


class CurrencyMismatchError(WalletError):
    code = "CURRENCY_MISMATCH"

    def __init__(self, player_id: str, wallet_currency: str, currency: str) -> None:
        super().__init__(
            f"wallet currency is {wallet_currency}, transaction currency is {currency}",
            player_id=player_id,
            wallet_currency=wallet_currency,
        )


class TransactionConflictError(WalletError):
    """The transactionId is already used by a transaction with a different body."""

    code = "TRANSACTION_CONFLICT"

    def __init__(self, transaction_id: str) -> None:
        super().__init__(
            f"transaction {transaction_id!r} was already applied with a different body",
            transaction_id=transaction_id,
        )


class TransactionNotFoundError(WalletError):
    code = "TRANSACTION_NOT_FOUND"

    def __init__(self, transaction_id: str) -> None:
        super().__init__(f"transaction {transaction_id!r} is unknown", transaction_id=transaction_id)


class InvalidRequestError(WalletError):
    code = "INVALID_REQUEST"
