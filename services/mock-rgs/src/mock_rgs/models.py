"""Wire models of the mock RGS admin API, shared by the server and `admin_client`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, StrictInt
from pydantic.alias_generators import to_camel

from hub_common.schemas import WireModel


class Delivery(WireModel):
    """One webhook POST as received, whatever its signature or our answer."""

    event_id: str | None
    event_type: str | None
    attempt: int | None
    replay: bool
    verified: bool
    status: int
    headers: dict[str, str]
    body: Any
    received_at: datetime


class WebhooksOut(WireModel):
    received: list[Delivery]
    unique_events: int
    acknowledged_events: int
    duplicates: int
    invalid_signatures: int


class Behaviour(WireModel):
    """How `/webhooks` answers verified deliveries. Default: 200 at once.

    `status` with `count`: the next `count` deliveries get `status`; `status` alone: every delivery does.
    `failRate`: each delivery answers `failStatus` with that probability. `delayMs`: wait before answering.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid")

    status: StrictInt | None = Field(default=None, ge=100, le=599)
    count: StrictInt | None = Field(default=None, ge=0)
    fail_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    fail_status: StrictInt = Field(default=500, ge=100, le=599)
    delay_ms: StrictInt = Field(default=0, ge=0)
    seed: StrictInt | None = None
