"""`GET /v1/players/{playerId}/balance`: one operator call, paid from the budget the ledger spends too."""

from __future__ import annotations

from typing import Protocol

from hub_common.operator import Budget, OperatorClient, OperatorRateLimited, Priority
from hub_common.schemas import Balance


class BalanceService(Protocol):
    async def balance(self, player_id: str, correlation_id: str) -> Balance: ...


class OperatorBalanceService:
    def __init__(self, client: OperatorClient, budget: Budget, *, budget_timeout_s: float) -> None:
        self._client = client
        self._budget = budget
        self._budget_timeout_s = budget_timeout_s

    async def balance(self, player_id: str, correlation_id: str) -> Balance:
        # Reads rank with BETs: money owed to players (WIN/REFUND) keeps going first.
        await self._budget.acquire(Priority.DEBIT, timeout_s=self._budget_timeout_s)
        try:
            answer = await self._client.get_balance(player_id, correlation_id=correlation_id)
        except OperatorRateLimited as exc:
            # The operator's Retry-After pauses every process spending the budget, not only this one.
            await self._budget.defer(exc.retry_after_s)
            raise
        return Balance(player_id=player_id, balance_cents=answer.balance_cents, currency=answer.currency)
