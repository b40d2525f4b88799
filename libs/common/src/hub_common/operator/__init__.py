"""Access to the operator wallet: settings, the signed HTTP client, and the shared call budget."""

from hub_common.operator.budget import Budget, Priority
from hub_common.operator.client import (
    OperatorBalance,
    OperatorClient,
    OperatorTransaction,
    OperatorTransactionRequest,
)
from hub_common.operator.errors import (
    BudgetTimeout,
    CircuitOpenError,
    OperatorRateLimited,
    OperatorRejected,
    OperatorTechnicalError,
)
from hub_common.operator.settings import OperatorSettings

__all__ = [
    "Budget",
    "BudgetTimeout",
    "CircuitOpenError",
    "OperatorBalance",
    "OperatorClient",
    "OperatorRateLimited",
    "OperatorRejected",
    "OperatorSettings",
    "OperatorTechnicalError",
    "OperatorTransaction",
    "OperatorTransactionRequest",
    "Priority",
]
