"""Settings of the reconciler (`RECONCILER_` prefix, `__` nesting)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from hub_common.operator import OperatorSettings
from hub_common.operator.client import MAX_FEED_PAGE
from hub_common.settings import BackendSettings

DailyTime = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]


class ReconcilerSettings(BackendSettings):
    model_config = SettingsConfigDict(env_prefix="RECONCILER_")

    port: int = Field(default=3012, ge=0, le=65535)
    # The operator and the budget every replica of every service shares (same `budget_name` as the ledger's).
    operator: OperatorSettings = Field(default_factory=OperatorSettings)

    # faust app id: the join's consumer group and its internal topics' prefix (the Kafka topic prefix is added).
    app_id: str = "hub-reconciler"
    # faust's own files (it keeps no table here; see stream.py).
    data_dir: Path = Path(".cache/reconciler")
    # The join reads its input in batches of up to `batch_max` records, or what arrived within `batch_within_s`.
    batch_max: int = Field(default=5000, ge=1)
    batch_within_s: float = Field(default=0.2, gt=0)
    # A finding about an operator id is reported once it has held this long since the id was first seen.
    grace_window_s: float = Field(default=600.0, gt=0)
    sweep_interval_s: float = Field(default=30.0, gt=0)
    # Operator ids evaluated per sweep query (the sweep loops, yielding between queries).
    sweep_batch: int = Field(default=5000, ge=1)
    # Join state untouched this long is deleted (a record arriving later starts a new grace window).
    retention_s: float = Field(default=7 * 86_400.0, gt=0)

    # The operator feed: one poller pages it continuously into operator_transactions and operator.transactions.
    feed_enabled: bool = True
    feed_name: str = "operator"
    feed_poll_interval_s: float = Field(default=60.0, gt=0)
    feed_page_limit: int = Field(default=MAX_FEED_PAGE, ge=1, le=MAX_FEED_PAGE)
    # Windows end this long before now: an operator record is in its feed this long after its createdAt.
    feed_delay_s: float = Field(default=60.0, ge=0)
    # After an outage the feed catches up window by window, each at most this long (coverage moves steadily).
    feed_max_window_s: float = Field(default=3_600.0, gt=0)
    # Where a feed that never ran starts reading.
    feed_start_lookback_s: float = Field(default=86_400.0, ge=0)
    # Operator records older than this are deleted (the reconciler owns operator_transactions).
    operator_retention_days: int = Field(default=90, ge=1)

    # The daily report: every day since the last successful one, once its end is covered by the feed.
    daily_enabled: bool = True
    daily_at_utc: DailyTime = "00:30"
    daily_check_interval_s: float = Field(default=3_600.0, gt=0)
    # How long a due day waits for the feed's coverage before it is run anyway (undecided rows then count as
    # AWAITING_FEED and the run is recorded as incomplete, retried at the next check).
    daily_feed_wait_s: float = Field(default=600.0, ge=0)
    # The first day the daily run covers on a database that has no run yet (default: yesterday).
    daily_first_day: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    report_dir: Path = Path("reconciliation-reports")
    report_slice_s: float = Field(default=3_600.0, gt=0)
