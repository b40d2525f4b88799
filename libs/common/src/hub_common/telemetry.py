"""JSON logging with the correlation id, OpenTelemetry tracing, and W3C trace context in Kafka headers."""

from __future__ import annotations

import contextvars
import logging
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from hub_common.settings import TelemetrySettings

CORRELATION_HEADER = "X-Correlation-ID"
KAFKA_CORRELATION_HEADER = "correlation-id"

_correlation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("correlation_id", default=None)

KafkaHeaders = list[tuple[str, bytes]]


# An id a caller chose (a client id before it is known to be valid) is cut to this many characters in logs.
LOGGED_ID_MAX = 64


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def logged_id(value: str | None, limit: int = LOGGED_ID_MAX) -> str | None:
    """An id as it may appear in a log line: at most `limit` characters (then how many were cut), so a caller
    cannot fill the logs through a header (up to 8 KiB) that is logged when it is refused."""
    if value is None or len(value) <= limit:
        return value
    return f"{value[:limit]}...(+{len(value) - limit})"


def current_correlation_id() -> str | None:
    return _correlation_id.get()


@contextmanager
def correlation_scope(correlation_id: str) -> Iterator[str]:
    token = _correlation_id.set(correlation_id)
    try:
        yield correlation_id
    finally:
        _correlation_id.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, carrying the correlation id and the current trace/span ids."""

    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if (cid := _correlation_id.get()) is not None:
            entry["correlationId"] = cid
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["traceId"] = format(span.trace_id, "032x")
            entry["spanId"] = format(span.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in self._skip and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(service: str, settings: TelemetrySettings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.log_json:
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # aiokafka logs every reconnect at ERROR/WARNING; keep them but not the INFO chatter.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))


def setup_tracing(service: str, settings: TelemetrySettings) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if settings.otlp_endpoint:
        # Imported lazily: the OTLP exporter is optional (installed where a collector exists).
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    if settings.console_spans:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider


def kafka_headers(correlation_id: str, content_type: str = "application/json") -> KafkaHeaders:
    """Headers for a produced record: the current trace context (W3C `traceparent`), correlation id, type."""
    carrier: dict[str, str] = {}
    inject(carrier)
    headers = [(k, v.encode()) for k, v in carrier.items()]
    headers.append((KAFKA_CORRELATION_HEADER, correlation_id.encode()))
    headers.append(("content-type", content_type.encode()))
    return headers


def context_from_kafka(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context:
    carrier = {k: v.decode(errors="replace") for k, v in headers or ()}
    return extract(carrier)


def header_value(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    for key, value in headers or ():
        if key == name:
            return value.decode(errors="replace")
    return None


def http_trace_headers() -> dict[str, str]:
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier
