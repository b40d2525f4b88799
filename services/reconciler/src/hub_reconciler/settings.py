"""Settings of the reconciler (`RECONCILER_` prefix, `__` nesting)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from hub_common.operator import OperatorSettings
from hub_common.secret_policy import SecuredSettings
from hub_common.settings import DatabaseSettings, KafkaSettings, TelemetrySettings


class OperatorFeedSettings(OperatorSettings):
    """Where the operator's report feed lives, how we sign for it (contract section 3), and the shared budget
    its calls are charged to (the same `budget_name` and rate as the ledger's)."""

    timeout_s: float = Field(default=10.0, gt=0)
    page_limit: int = Field(default=1000, ge=1, le=1000)
    # 429s are obeyed (Retry-After), but a feed read is never worth more than a few attempts.
    max_attempts: int = Field(default=3, ge=1)


DailyTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class ReconcilerSettings(SecuredSettings):
    model_config = SettingsConfigDict(env_prefix="RECONCILER_", env_nested_delimiter="__", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    operator: OperatorFeedSettings = Field(default_factory=OperatorFeedSettings)

    host: str = "127.0.0.1"
    port: int = Field(default=3012, ge=0, le=65535)

    # faust app id: also the consumer group and the changelog topic's prefix (the Kafka topic prefix is added).
    app_id: str = "hub-reconciler"
    # memory:// replays the compacted changelog at start; rocksdb:// needs rocksdict (not installed by default).
    store: str = "memory://"
    data_dir: Path = Path(".cache/reconciler")

    # One-sided entries younger than this are in flight, not missing.
    grace_window_s: float = Field(default=600.0, gt=0)
    sweep_interval_s: float = Field(default=30.0, gt=0)
    # Settled entries are kept this long so a re-published feed record does not look new.
    retention_s: float = Field(default=3 * 86_400.0, gt=0)

    # Every feed page is an operator call from the shared 60/min budget: poll rarely.
    feed_enabled: bool = True
    feed_poll_interval_s: float = Field(default=60.0, gt=0)
    feed_lookback_s: float = Field(default=3_600.0, ge=0)
    # Re-read this much before the last window's end: late-written operator records are not lost.
    feed_overlap_s: float = Field(default=120.0, ge=0)

    daily_enabled: bool = True
    daily_at_utc: DailyTime = "00:30"
    report_dir: Path = Path("reconciliation-reports")
