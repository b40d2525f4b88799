"""The Kafka record envelope: `{"schema": "<Name>/<version>", "eventId", "occurredAt", "correlationId", "payload"}`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hub_common.errors import HubError

M = TypeVar("M", bound=BaseModel)


class EnvelopeError(HubError):
    """Bytes that are not an envelope, or a payload that does not fit its schema."""


class Envelope(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True)

    schema_name: str = Field(alias="schema", pattern=r"^[A-Za-z]+/\d+$")
    event_id: str = Field(alias="eventId")
    occurred_at: datetime = Field(alias="occurredAt")
    correlation_id: str = Field(alias="correlationId")
    payload: dict[str, Any]

    def encode(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", by_alias=True))

    def payload_as(self, model: type[M]) -> M:
        expected = schema_of(model)
        if self.schema_name != expected:
            raise EnvelopeError(f"schema {self.schema_name!r} is not {expected!r}")
        try:
            return model.model_validate(self.payload)
        except ValidationError as exc:
            raise EnvelopeError(f"payload does not fit {expected}: {exc.error_count()} error(s)") from exc


def schema_of(model: type[BaseModel], version: int = 1) -> str:
    return f"{model.__name__}/{version}"


def wrap(
    payload: BaseModel,
    *,
    correlation_id: str,
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Envelope:
    return Envelope(
        schema_name=schema_of(type(payload)),
        event_id=event_id or str(uuid.uuid4()),
        occurred_at=occurred_at or datetime.now(UTC),
        correlation_id=correlation_id,
        payload=payload.model_dump(mode="json", by_alias=True),
    )


def decode(raw: bytes | None) -> Envelope:
    if raw is None:
        raise EnvelopeError("record has no value")
    try:
        return Envelope.model_validate(orjson.loads(raw))
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"value is not JSON: {exc}") from exc
    except ValidationError as exc:
        raise EnvelopeError(f"value is not an envelope: {exc.error_count()} error(s)") from exc
