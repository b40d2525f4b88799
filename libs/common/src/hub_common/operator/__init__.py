"""Access to the operator wallet: settings, the signed HTTP client, and the shared call budget."""

from hub_common.operator.budget import BALANCE_CALLER_PREFIX, LEDGER_CALLER, Budget, Priority, balance_caller
from hub_common.operator.client import (
    FeedPage,
    OperatorBalance,
    OperatorClient,
    OperatorRecord,
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
from hub_common.operator.ids import cancel_id, operator_id, operator_id_sql
from hub_common.operator.outlook import BudgetOutlook, read_outlook
from hub_common.operator.requests import cancel_request, operator_request
from hub_common.operator.settings import OperatorSettings

__all__ = [
    "BALANCE_CALLER_PREFIX",
    "LEDGER_CALLER",
    "Budget",
    "BudgetOutlook",
    "BudgetTimeout",
    "CircuitOpenError",
    "FeedPage",
    "OperatorBalance",
    "OperatorClient",
    "OperatorRateLimited",
    "OperatorRecord",
    "OperatorRejected",
    "OperatorSettings",
    "OperatorTechnicalError",
    "OperatorTransaction",
    "OperatorTransactionRequest",
    "Priority",
    "balance_caller",
    "cancel_id",
    "cancel_request",
    "operator_id",
    "operator_id_sql",
    "operator_request",
    "read_outlook",
]
