"""How `bench e2e` turns one transaction's spans into its hops (`bench.spans.hops`): the per-hop table that says
where a waiting RGS's milliseconds go."""

from __future__ import annotations

import pytest

from bench.spans import Span, hops

MS = 1_000_000


def span(service: str, name: str, start_ms: float, end_ms: float) -> Span:
    return Span(service, name, "t-1", int(start_ms * MS), int(end_ms * MS), {})


# One BET as the services record it (prefixed topic names, as a test's or a benchmark's stack has them).
TRACE = [
    span("gateway", "POST /v1/transactions", 0, 15),
    span("gateway", "gateway.admit", 0.2, 3.0),
    span("gateway", "bench-1.hub.commands publish", 1.5, 2.5),
    span("ledger", "ledger.command", 3.3, 12.0),
    span("ledger", "ledger.begin", 3.4, 6.0),
    # The PROCESSING event's publish happens while the ledger works on: it is not the relay hop.
    span("ledger", "bench-1.hub.transactions publish", 6.5, 7.5),
    span("ledger", "operator.budget", 6.0, 7.0),
    span("ledger", "operator post", 7.0, 8.5),
    span("ledger", "ledger.finish", 8.5, 11.0),
    span("ledger", "bench-1.hub.transactions publish", 11.5, 12.6),
    span("gateway", "bench-1.hub.transactions receive", 13.6, 13.7),
]


def test_each_hop_is_measured_between_the_points_the_table_names() -> None:
    measured = hops(TRACE)
    expected = {
        "total (server span)": 15.0,
        "gateway in": 0.2,
        "admission": 2.8,
        "of which produce": 1.0,
        "Kafka to ledger": 0.8,
        "ledger begin": 2.6,
        "budget grant": 1.0,
        "operator call": 1.5,
        "state commit": 2.5,
        "outbox relay": 1.6,  # from the finish's end to the final event's publish acked, not the PROCESSING one
        "Kafka to gateway": 1.0,
        "gateway out": 1.4,
    }
    assert measured == pytest.approx(expected)


def test_a_hop_whose_spans_are_missing_is_left_out_and_a_trace_without_its_request_gives_nothing() -> None:
    unsampled_ledger = [s for s in TRACE if s.service == "gateway"]
    measured = hops(unsampled_ledger)
    assert set(measured) == {"total (server span)", "gateway in", "admission", "of which produce", "gateway out"}
    assert hops([s for s in TRACE if s.name != "POST /v1/transactions"]) == {}
