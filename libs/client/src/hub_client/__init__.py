"""Python client of the Integration Hub gateway for RGS developers (docs/integrating.md).

from hub_client import HubClient, bet
with HubClient(url, client_id, secret) as hub:
    transaction = hub.submit(bet("bet-1", "player-1", 250, "EUR", round_id="r-1"))
"""

from hub_client._flow import FollowPolicy, RetryPolicy
from hub_client.client import AsyncHubClient, HubClient
from hub_client.errors import (
    AmountMismatch,
    ApiError,
    AuthenticationError,
    BetAlreadyRefunded,
    BetAlreadySettled,
    BetNotFound,
    CurrencyMismatch,
    DuplicateRefId,
    HubConnectionError,
    HubError,
    IdempotencyKeyReused,
    InsufficientFunds,
    InternalError,
    InvalidRequest,
    InvalidSignature,
    OperatorUnavailable,
    PlayerNotFound,
    RateLimited,
    RequestError,
    RequestInProgress,
    ServiceUnavailable,
    StaleTimestamp,
    StillPending,
    TemporaryError,
    TransactionNotFound,
    TransactionRejected,
    UnknownClient,
    UnsupportedCurrency,
    WebhookVerificationError,
)
from hub_client.models import Balance, Transaction, TransactionRequest, WebhookEvent, bet, refund, win
from hub_client.signing import sign_request, standard_webhooks_secret
from hub_client.webhooks import verify_webhook

__all__ = [
    "AmountMismatch",
    "ApiError",
    "AsyncHubClient",
    "AuthenticationError",
    "Balance",
    "BetAlreadyRefunded",
    "BetAlreadySettled",
    "BetNotFound",
    "CurrencyMismatch",
    "DuplicateRefId",
    "FollowPolicy",
    "HubClient",
    "HubConnectionError",
    "HubError",
    "IdempotencyKeyReused",
    "InsufficientFunds",
    "InternalError",
    "InvalidRequest",
    "InvalidSignature",
    "OperatorUnavailable",
    "PlayerNotFound",
    "RateLimited",
    "RequestError",
    "RequestInProgress",
    "RetryPolicy",
    "ServiceUnavailable",
    "StaleTimestamp",
    "StillPending",
    "TemporaryError",
    "Transaction",
    "TransactionNotFound",
    "TransactionRejected",
    "TransactionRequest",
    "UnknownClient",
    "UnsupportedCurrency",
    "WebhookEvent",
    "WebhookVerificationError",
    "bet",
    "refund",
    "sign_request",
    "standard_webhooks_secret",
    "verify_webhook",
    "win",
]
