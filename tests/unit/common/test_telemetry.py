from __future__ import annotations

import logging

import orjson
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from hub_common.settings import TelemetrySettings
from hub_common.telemetry import (
    JsonFormatter,
    context_from_kafka,
    correlation_scope,
    current_correlation_id,
    header_value,
    kafka_headers,
)


def _record(msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("hub.test", logging.INFO, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_json_lines_carry_correlation_trace_and_extra_fields() -> None:
    tracer = TracerProvider().get_tracer("test")
    formatter = JsonFormatter("svc")
    with correlation_scope("corr-1"), tracer.start_as_current_span("work") as span:
        line = orjson.loads(formatter.format(_record("hello %s", refId="bet-1")))
        trace_id = format(span.get_span_context().trace_id, "032x")
    assert line["msg"] == "hello %s"
    assert line["service"] == "svc"
    assert line["correlationId"] == "corr-1"
    assert line["traceId"] == trace_id
    assert line["refId"] == "bet-1"
    assert current_correlation_id() is None


def test_kafka_headers_carry_the_trace_context_across() -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("produce") as span:
        headers = kafka_headers("corr-2")
        sent = span.get_span_context()
    assert header_value(headers, "correlation-id") == "corr-2"
    assert header_value(headers, "content-type") == "application/json"
    traceparent = header_value(headers, "traceparent")
    assert traceparent is not None and format(sent.trace_id, "032x") in traceparent
    received = trace.get_current_span(context_from_kafka(headers)).get_span_context()
    assert (received.trace_id, received.span_id) == (sent.trace_id, sent.span_id)


def test_settings_defaults_are_quiet_and_structured() -> None:
    settings = TelemetrySettings()
    assert settings.log_json and settings.log_level == "INFO" and settings.otlp_endpoint is None
