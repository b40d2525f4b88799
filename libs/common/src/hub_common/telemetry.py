"""JSON logging with the correlation id, OpenTelemetry tracing, and W3C trace context in Kafka headers."""

from __future__ import annotations

import contextvars
import logging
import os
import sys
import threading
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
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

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
    provider = tracer_provider(service, settings)
    trace.set_tracer_provider(provider)
    return provider


def tracer_provider(service: str, settings: TelemetrySettings) -> TracerProvider:
    """The process's provider: its exporters per `settings`, and its sampler."""
    # Nothing exported: nothing recorded either. Spans then cost an id each (they still carry the trace id into
    # logs, Kafka headers and outgoing requests) instead of their attributes, events and processor calls.
    sampler = None if settings.exports_spans else ALWAYS_OFF
    provider = TracerProvider(resource=Resource.create({"service.name": service}), sampler=sampler)
    if settings.otlp_endpoint:
        # Imported lazily: the OTLP exporter is optional (installed where a collector exists).
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
            OTLPSpanExporter,
        )

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.otlp_endpoint)))
    if settings.console_spans:
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    if settings.spans_dir is not None:
        path = settings.spans_dir / f"{service}-{os.getpid()}.spans.jsonl"
        provider.add_span_processor(BatchSpanProcessor(JsonLinesSpanExporter(path, service)))
    return provider


class JsonLinesSpanExporter(SpanExporter):
    """Spans as JSON lines in a file (`TELEMETRY_SPANS_DIR`): ids, parent, name, start and end in ns since the
    epoch, attributes. Processes on one host share the clock, so their spans can be laid side by side."""

    def __init__(self, path: os.PathLike[str] | str, service: str) -> None:
        self._path = path
        self._service = service
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = []
        for span in spans:
            context = span.get_span_context()
            if context is None:
                continue
            entry = {
                "service": self._service,
                "name": span.name,
                "trace": format(context.trace_id, "032x"),
                "span": format(context.span_id, "016x"),
                "parent": format(span.parent.span_id, "016x") if span.parent is not None else None,
                "start": span.start_time,
                "end": span.end_time,
                "attributes": dict(span.attributes or {}),
            }
            lines.append(orjson.dumps(entry, default=str))
        with self._lock, open(self._path, "ab") as out:
            out.write(b"".join(line + b"\n" for line in lines))
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


@contextmanager
def span(
    tracer: trace.Tracer,
    name: str,
    *,
    context: otel_context.Context | None = None,
    kind: trace.SpanKind = trace.SpanKind.INTERNAL,
) -> Iterator[None]:
    """`tracer.start_as_current_span`, except in a trace whose parent is not sampled (every trace when nothing
    exports spans): its span would not be recorded, so none is made and the parent's context is current instead,
    which still carries the trace id into logs, Kafka headers and outgoing requests. An unrecorded span costs a
    fresh id and two context switches (~10 us) on every transaction and attempt, for nothing."""
    parent = trace.get_current_span(context).get_span_context()
    if not parent.is_valid or parent.trace_flags.sampled:
        with tracer.start_as_current_span(name, context=context, kind=kind):
            yield
        return
    if context is None:
        yield
        return
    token = otel_context.attach(context)
    try:
        yield
    finally:
        otel_context.detach(token)


def kafka_headers(
    correlation_id: str, content_type: str = "application/json", *, context: otel_context.Context | None = None
) -> KafkaHeaders:
    """Headers for a produced record: the trace context (W3C `traceparent`; `context`, else the current one),
    correlation id, type."""
    carrier: dict[str, str] = {}
    inject(carrier, context=context)
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
