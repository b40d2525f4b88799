"""Gateway settings: `GATEWAY_*` (nested blocks with `__`), plus the stack-wide Kafka/database names."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from hub_common.operator import OperatorSettings
from hub_common.schemas import client_id_problem
from hub_common.settings import BackendSettings

KIB = 1024


class GatewaySettings(BackendSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_")

    port: int = Field(default=3000, ge=0, le=65535)

    # client id -> its active secrets (two during a rotation). SecretStr keeps them out of reprs and logs.
    clients: dict[str, list[SecretStr]] = Field(default_factory=dict)
    supported_currencies: list[str] = Field(default_factory=lambda: ["EUR", "USD", "GBP"])
    signature_tolerance_s: int = Field(default=300, ge=1)
    max_body_bytes: int = Field(default=64 * KIB, ge=KIB)

    # How long a POST waits for the ledger's outcome before answering 202.
    outcome_budget_s: float = Field(default=5.0, ge=0, le=60)
    idempotency_ttl_s: int = Field(default=24 * 3600, ge=1)
    # A second request for a key/refId that another request is still admitting waits at most this long for
    # the row lock before answering 409 REQUEST_IN_PROGRESS (short: it holds a pooled connection meanwhile).
    admission_lock_timeout_ms: int = Field(default=250, ge=1)
    in_progress_retry_after_s: int = Field(default=1, ge=1)
    # Connections of the admission pool, all opened at start-up and kept open (their prepared statements with
    # them). Each admission holds one from its insert until Kafka acknowledged the command and it committed
    # (a few ms): 6 admit thousands per second, and keep the connection budget (docs/deploy.md) within
    # PostgreSQL's default max_connections at the documented replica counts.
    admission_pool_size: int = Field(default=6, ge=1)
    # Group commit (store.py): admissions arriving while others are written share one database transaction and
    # one Kafka request, at most this many per batch and this many batches at once (each holds an admission
    # connection: keep it below `admission_pool_size`, whose rest serves lookups and replays).
    admission_max_batch: int = Field(default=100, ge=1)
    # One: what arrives during a batch waits for the next, so batches grow with the load and each admission's
    # share of the round trips and system calls (BEGIN, INSERT, produce, COMMIT) shrinks; a second batch in
    # flight halved the batch size for no gain (docs/performance.md). Its cost: a batch held up by a rival
    # replica's row lock (at most `admission_lock_timeout_ms`) holds up the admissions queued behind it.
    admission_batches_in_flight: int = Field(default=1, ge=1)
    # The longest a POST waits for Kafka to acknowledge its command. The producer's own request timeout is
    # derived from it (see `producer_request_timeout_ms`), so that aiokafka has given up on an unacknowledged
    # record before the gateway answers 503: no buffered record can reach the broker after that answer.
    produce_timeout_s: float = Field(default=10.0, ge=2.5)
    # How long the command producer waits to fill a batch. Concurrent admissions batch by themselves (aiokafka
    # keeps one request in flight per broker and sends what gathered meanwhile), so waiting only adds latency.
    command_linger_ms: int = Field(default=0, ge=0, le=100)

    # Admission control (admission_control.py, docs/contract.md section 1.3). A BET is refused (429) when it would
    # wait longer than this for the operator, and the ledger never sends one later than this after admission.
    # 30 s: a slot spin is a player watching a spinning reel; game clients give up on a bet after 10-30 s (the
    # usual wallet-call timeout of an RGS), and a debit landing after the player has gone is a dispute, not a
    # game. Long enough to ride out a burst of a few seconds; short enough that a queued BET still has a player.
    bet_useful_life_s: float = Field(default=30.0, gt=0, le=600)
    # Each RGS client may hold at most this share of the BETs the useful life allows (but always this floor),
    # so one client cannot fill the queue for all; each client's balance reads may spend at most this share of
    # the operator budget per window (at least one call).
    client_bet_share: float = Field(default=0.5, gt=0, le=1)
    client_bet_floor: int = Field(default=2, ge=1)
    balance_share: float = Field(default=0.1, gt=0, le=1)
    # How often the forecast re-reads the budget and the open work from PostgreSQL (shared by every replica).
    forecast_refresh_s: float = Field(default=0.5, gt=0)

    # The balance endpoint's operator access; it shares the ledger's budget (same database, same budget_name).
    operator: OperatorSettings = Field(default_factory=OperatorSettings)
    balance_budget_timeout_s: float = Field(default=2.0, gt=0)

    @property
    def producer_request_timeout_ms(self) -> int:
        """aiokafka fails a record after at most about twice its request timeout (batch expiry plus one request
        in flight); a fifth of margin keeps that inside `produce_timeout_s`."""
        return int(self.produce_timeout_s * 1000 / 2.5)

    @field_validator("clients")
    @classmethod
    def _every_client_has_a_secret(cls, value: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        for client_id, secrets in value.items():
            # The operator ids of a client's transactions start with its id (hub_common.operator.ids).
            if (problem := client_id_problem(client_id)) is not None:
                raise ValueError(f"client id {client_id[:70]!r}: {problem}")
            if not secrets or any(not s.get_secret_value() for s in secrets):
                raise ValueError(f"client {client_id!r} needs at least one non-empty secret")
        return value

    @field_validator("supported_currencies")
    @classmethod
    def _iso_codes(cls, value: list[str]) -> list[str]:
        codes = [c.strip().upper() for c in value]
        if not codes or any(len(c) != 3 or not c.isalpha() for c in codes):
            raise ValueError('supported currencies must be ISO 4217 codes, e.g. ["EUR"]')
        return codes
