"""`GET /v1/players/{playerId}/balance`: one operator call, paid from the budget the ledger spends too.

Each client's reads are a caller of their own in the shared budget (`balance:<clientId>`), held to their share by
admission control, so one client's reads cannot eat the budget the others' transactions need.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from hub_common.operator import Budget, OperatorClient, OperatorRateLimited, Priority
from hub_common.schemas import Balance
from hub_gateway.admission_control import AdmissionControl


class BalanceService(Protocol):
    async def balance(self, client_id: str, player_id: str, correlation_id: str) -> Balance: ...


class OperatorBalanceService:
    def __init__(
        self,
        client: OperatorClient,
        budgets: Mapping[str, Budget],
        control: AdmissionControl,
        *,
        budget_timeout_s: float,
    ) -> None:
        self._client = client
        self._budgets = budgets
        self._control = control
        self._budget_timeout_s = budget_timeout_s

    async def balance(self, client_id: str, player_id: str, correlation_id: str) -> Balance:
        refusal = self._control.balance_refusal(client_id, self._budget_timeout_s)
        if refusal is not None:
            raise refusal
        budget = self._budgets[client_id]
        # Reads rank with BETs: money owed to players (WIN/REFUND) keeps going first.
        await budget.acquire(Priority.DEBIT, timeout_s=self._budget_timeout_s)
        self._control.balance_read(client_id)
        try:
            answer = await self._client.get_balance(player_id, correlation_id=correlation_id)
        except OperatorRateLimited as exc:
            # The operator's Retry-After pauses every process spending the budget, not only this one.
            await budget.defer(exc.retry_after_s)
            raise
        return Balance(player_id=player_id, balance_cents=answer.balance_cents, currency=answer.currency)
