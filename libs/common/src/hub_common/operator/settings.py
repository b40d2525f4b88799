"""How to reach the operator wallet and how much of its rate limit the Hub may spend."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr


class OperatorSettings(BaseModel):
    """Embedded in a service's settings (`LEDGER_OPERATOR__URL`, `GATEWAY_OPERATOR__RATE_PER_MINUTE`, ...)."""

    url: str = "http://127.0.0.1:3001"
    client_id: str = "integration-hub"
    secret: SecretStr = SecretStr("")
    timeout_s: float = Field(default=5.0, gt=0)
    connect_timeout_s: float = Field(default=2.0, gt=0)
    # The operator's contract: this many calls (all endpoints together) in any `window_s` seconds.
    rate_per_minute: int = Field(default=60, ge=1)
    window_s: float = Field(default=60.0, gt=0)
    # Added to the window: a call granted at t reaches the operator a little later than t, and network
    # jitter must not squeeze two grants 60 s apart into one operator-side 60 s window.
    safety_margin_s: float = Field(default=1.0, ge=0)
    budget_name: str = "operator"
    # Longest single sleep of a waiter before it re-checks the shared budget (and refreshes its waiter row).
    budget_poll_s: float = Field(default=1.0, gt=0)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=10.0, gt=0)
