"""Classified operator outcomes: business rejections are final, technical errors are retried."""

from __future__ import annotations

from hub_common.errors import HubError, InfrastructureError
from hub_common.schemas import ErrorCode


class OperatorRejected(HubError):
    """The operator refused the transaction for a business reason: final (REJECTED), never retried."""

    def __init__(self, code: ErrorCode, message: str, *, balance_cents: int | None = None) -> None:
        super().__init__(message, code=code, balance_cents=balance_cents)
        self.code = code
        self.balance_cents = balance_cents


class OperatorTechnicalError(InfrastructureError):
    """The call did not produce an answer we can use; retry.

    `outcome_unknown` is True when the request may have reached the operator (timeout, 5xx, dropped
    connection): it must be resolved with a GET before any resend.
    """

    def __init__(self, message: str, *, outcome_unknown: bool, status: int | None = None) -> None:
        super().__init__(message, outcome_unknown=outcome_unknown, status=status)
        self.outcome_unknown = outcome_unknown
        self.status = status


class OperatorRateLimited(OperatorTechnicalError):
    """429: the operator did not apply the call; wait `retry_after_s` before the next one."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"operator rate limit, retry after {retry_after_s} s", outcome_unknown=False, status=429)
        self.retry_after_s = retry_after_s


class CircuitOpenError(OperatorTechnicalError):
    """The breaker is open: nothing was sent; try again after `retry_in_s`."""

    def __init__(self, retry_in_s: float) -> None:
        super().__init__("operator circuit breaker is open", outcome_unknown=False)
        self.retry_in_s = retry_in_s


class BudgetTimeout(InfrastructureError):
    """No operator budget could be had within the caller's time limit."""
