"""The hops of a transaction's trace, from the span files the services write (`TELEMETRY_SPANS_DIR`).

Every service of the benchmark's stack writes its spans as JSON lines (hub_common.telemetry); the processes share
the host's clock, so one transaction's spans line up across them. A trace starts at the gateway's server span
(`POST /v1/transactions`, tagged with the request's correlation id) and its context travels with the command to
the ledger and with the result event back to the gateway. Each hop is the time between two points of one trace:

| hop | from | to |
|---|---|---|
| gateway in | server span start | `gateway.admit` start (authentication, parsing, admission control) |
| admission | `gateway.admit` start | its end (insert, produce acked, commit) |
| of which produce | `hub.commands publish` start | its end |
| Kafka to ledger | `hub.commands publish` end | `ledger.command` start (consumer fetch, player queue) |
| ledger begin | `ledger.begin` | (PENDING -> PROCESSING with the lease, one commit) |
| budget grant | `operator.budget` | (the shared budget's grant) |
| operator call | `operator post` | (the wallet's HTTP round trip) |
| state commit | `ledger.finish` | (final state, key, audit row, outbox row: one commit) |
| outbox relay | `ledger.finish` end | the final event's `hub.transactions publish` end (acked) |
| Kafka to gateway | that publish end | `hub.transactions receive` at the gateway |
| gateway out | the receive | server span end (answer written) |
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

SERVER_SPAN = "POST /v1/transactions"
CORRELATION_ATTRIBUTE = "hub.correlation_id"

HOPS = (
    "gateway in",
    "admission",
    "of which produce",
    "Kafka to ledger",
    "ledger begin",
    "budget grant",
    "operator call",
    "state commit",
    "outbox relay",
    "Kafka to gateway",
    "gateway out",
    "total (server span)",
)


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace: str
    start_ns: int
    end_ns: int
    attributes: Mapping[str, Any]

    @property
    def ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


def read_spans(directory: Path) -> dict[str, list[Span]]:
    """Every span in `directory`'s `*.spans.jsonl` files, by trace id."""
    traces: dict[str, list[Span]] = defaultdict(list)
    for path in sorted(directory.glob("*.spans.jsonl")):
        for line in path.read_bytes().splitlines():
            if not line.strip():
                continue
            raw = orjson.loads(line)
            span = Span(raw["service"], raw["name"], raw["trace"], raw["start"], raw["end"], raw["attributes"])
            traces[span.trace].append(span)
    return traces


def _first(spans: Iterable[Span], suffix: str, *, last: bool = False) -> Span | None:
    # Topic spans carry the (prefixed) topic: `<prefix>hub.commands publish`.
    found = [s for s in spans if s.name == suffix or s.name.endswith(("." + suffix, " " + suffix))]
    if not found:
        return None
    found.sort(key=lambda s: s.start_ns)
    return found[-1] if last else found[0]


def hops(spans: list[Span]) -> dict[str, float]:
    """The hops (ms) this trace shows; a hop whose spans are missing is left out."""
    server = _first(spans, SERVER_SPAN)
    if server is None:
        return {}
    admit = _first(spans, "gateway.admit")
    produce = _first(spans, "hub.commands publish")
    command = _first(spans, "ledger.command")
    begin = _first(spans, "ledger.begin")
    budget = _first(spans, "operator.budget", last=True)
    call = _first(spans, "operator post", last=True)
    finish = _first(spans, "ledger.finish")
    relay = _first(spans, "hub.transactions publish", last=True)
    receive = _first(spans, "hub.transactions receive")
    out: dict[str, float] = {"total (server span)": server.ms}

    def gap(name: str, start: int | None, end: int | None) -> None:
        if start is not None and end is not None:
            out[name] = (end - start) / 1e6

    gap("gateway in", server.start_ns, admit.start_ns if admit else None)
    if admit:
        out["admission"] = admit.ms
    if produce:
        out["of which produce"] = produce.ms
    gap("Kafka to ledger", produce.end_ns if produce else None, command.start_ns if command else None)
    for name, span in (("ledger begin", begin), ("budget grant", budget), ("operator call", call)):
        if span:
            out[name] = span.ms
    if finish:
        out["state commit"] = finish.ms
    final_relay = relay if relay and finish and relay.start_ns >= finish.start_ns else None
    gap("outbox relay", finish.end_ns if finish else None, final_relay.end_ns if final_relay else None)
    gap("Kafka to gateway", final_relay.end_ns if final_relay else None, receive.start_ns if receive else None)
    gap("gateway out", receive.start_ns if receive else None, server.end_ns)
    return out


def correlation_of(spans: list[Span]) -> str | None:
    server = _first(spans, SERVER_SPAN)
    value = server.attributes.get(CORRELATION_ATTRIBUTE) if server else None
    return str(value) if value is not None else None
