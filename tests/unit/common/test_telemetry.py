from __future__ import annotations

import logging
from pathlib import Path

import orjson
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from hub_common.settings import TelemetrySettings
from hub_common.telemetry import (
    JsonFormatter,
    context_from_kafka,
    correlation_scope,
    current_correlation_id,
    header_value,
    kafka_headers,
    span,
    tracer_provider,
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


def test_kafka_headers_of_a_given_context_name_that_trace_not_the_current_one() -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        theirs = context_from_kafka(kafka_headers("c"))
    with tracer.start_as_current_span("batch"):
        headers = kafka_headers("c", context=theirs)
    traceparent = header_value(headers, "traceparent")
    assert traceparent is not None and format(caller.get_span_context().span_id, "016x") in traceparent


def test_without_an_exporter_spans_are_not_recorded_but_their_ids_travel() -> None:
    tracer = tracer_provider("svc", TelemetrySettings()).get_tracer("test")
    with tracer.start_as_current_span("work") as span:
        headers = kafka_headers("c")
    assert not span.is_recording()
    received = trace.get_current_span(context_from_kafka(headers)).get_span_context()
    assert received.is_valid and received.trace_id == span.get_span_context().trace_id


def test_spans_dir_gets_one_json_line_per_span(tmp_path: Path) -> None:
    provider = tracer_provider("svc", TelemetrySettings(spans_dir=tmp_path))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer") as outer, tracer.start_as_current_span("inner", attributes={"a": 1}):
        pass
    provider.shutdown()  # flushes the batch processor
    [path] = list(tmp_path.glob("svc-*.spans.jsonl"))
    lines = {line["name"]: line for line in map(orjson.loads, path.read_bytes().splitlines())}
    context = outer.get_span_context()
    assert lines["inner"]["parent"] == format(context.span_id, "016x")
    assert lines["inner"]["trace"] == lines["outer"]["trace"] == format(context.trace_id, "032x")
    assert lines["inner"]["attributes"] == {"a": 1} and lines["inner"]["service"] == "svc"
    assert lines["outer"]["start"] <= lines["inner"]["start"] <= lines["inner"]["end"] <= lines["outer"]["end"]


def _exported(provider: TracerProvider) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


def test_a_span_in_a_sampled_trace_is_recorded_under_its_parent() -> None:
    provider = TracerProvider()
    exported = _exported(provider)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("parent") as parent, span(tracer, "child"):
        inner = trace.get_current_span().get_span_context()
    [child, _] = exported.get_finished_spans()
    assert child.name == "child" and child.parent is not None
    assert child.parent.span_id == parent.get_span_context().span_id
    assert inner.span_id == child.context.span_id


def test_no_span_is_made_in_an_unsampled_trace_and_its_context_stays_current() -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    exported = _exported(provider)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("root") as root:
        headers = kafka_headers("corr-3")
    sent = root.get_span_context()
    assert sent.is_valid and not sent.trace_flags.sampled
    with span(tracer, "ledger.command", context=context_from_kafka(headers)):
        inside = trace.get_current_span().get_span_context()
        with span(tracer, "ledger.begin"):
            nested = trace.get_current_span().get_span_context()
    # The trace id (and the parent's span id) reach whatever the work logs, produces or calls.
    assert (inside.trace_id, inside.span_id) == (sent.trace_id, sent.span_id)
    assert nested == inside
    assert not trace.get_current_span().get_span_context().is_valid
    assert exported.get_finished_spans() == ()


def test_a_trace_without_a_parent_starts_with_a_span() -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    tracer = provider.get_tracer("test")
    with span(tracer, "sweep"):
        current = trace.get_current_span().get_span_context()
    # Not recorded, but a trace id of its own for the logs and the operator call.
    assert current.is_valid and not current.trace_flags.sampled
