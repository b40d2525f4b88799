"""The ledger's one settings class (`LEDGER_` prefix, `__` nesting)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from hub_common.operator import OperatorSettings
from hub_common.settings import BackendSettings

# An operator call starts only with at least the operator timeout plus this much left on the transaction's lease.
LEASE_MARGIN_S = 1.0


class LedgerSettings(BackendSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_")

    port: int = Field(default=3010, ge=0, le=65535)
    operator: OperatorSettings = Field(default_factory=OperatorSettings)

    group_id: str = "hub-ledger"
    # Records fetched but not yet handled; past this the consumer pauses its partitions (still polling).
    max_in_flight: int = Field(default=1000, ge=1)
    commit_interval_s: float = Field(default=1.0, gt=0)
    # Group commit: at most this many commands share one database transaction per step, and this many such
    # transactions run at once per step (begin, finish). Each holds a pool connection: 2 x in-flight, plus the
    # budget, the relay and the jobs, must fit `database.pool_max_size`. Fewer in flight means bigger batches
    # (fewer round trips per command) at the price of latency; 2 measured best on the benchmark.
    db_max_batch: int = Field(default=100, ge=1)
    db_batches_in_flight: int = Field(default=2, ge=1)

    # A BET whose outcome is still unknown after this long is cancelled (REFUND sent) and FAILED.
    bet_deadline_s: float = Field(default=120.0, gt=0)
    # WIN and REFUND (and compensating refunds) are retried this long, then FAILED with an alert.
    credit_deadline_s: float = Field(default=86_400.0, gt=0)
    # How long the ledger holds an open transaction without renewing (hub_common.transitions): it renews every
    # third of it while it works; after a crash, others (the sweeper, `hubctl tx resolve`) wait this long.
    lease_ttl_s: float = Field(default=30.0, gt=0)
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)

    outbox_poll_s: float = Field(default=1.0, gt=0)
    outbox_batch: int = Field(default=500, ge=1)

    sweep_interval_s: float = Field(default=30.0, gt=0)
    sweep_age_s: float = Field(default=300.0, gt=0)
    compensation_interval_s: float = Field(default=5.0, gt=0)
    key_cleanup_interval_s: float = Field(default=300.0, gt=0)
    # How often the runbook's state gauges (stuck transactions, dead letters, table sizes) are recomputed.
    gauge_interval_s: float = Field(default=15.0, gt=0)

    @field_validator("operator")
    @classmethod
    def _operator_secret_set(cls, value: OperatorSettings) -> OperatorSettings:
        # Every operator call is signed with it: an empty secret would only surface as 401s at run time.
        if not value.secret.get_secret_value():
            raise ValueError("operator.secret is required (LEDGER_OPERATOR__SECRET)")
        return value

    @model_validator(mode="after")
    def _lease_outlasts_a_call(self) -> LedgerSettings:
        # A call needs the operator timeout plus a margin of lease left. Renewed every third of its TTL, a lease
        # of at least twice that always has it, so no renewal has to run between a budget grant and its call
        # (a delay there would bunch calls at the operator beyond the budget's safety margin).
        needed = 2 * (self.operator.timeout_s + LEASE_MARGIN_S)
        if self.lease_ttl_s < needed:
            raise ValueError(
                f"lease_ttl_s ({self.lease_ttl_s}) must be at least 2 x (operator.timeout_s + {LEASE_MARGIN_S}) "
                f"= {needed}"
            )
        return self
