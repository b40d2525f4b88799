"""Collect the spans the process creates, whatever TracerProvider an earlier test may have installed.

OpenTelemetry lets the global provider be set once per process; a later `set_tracer_provider` is ignored.
So the in-memory exporter is attached to the SDK provider in place, or installs one when there is none.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


@contextmanager
def collected_spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        # The processor stays registered (the SDK cannot remove one) but exports nowhere once shut down.
        exporter.shutdown()
