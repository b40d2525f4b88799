"""One trace from the HTTP request through the Kafka produce, and the correlation id in every log line."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from opentelemetry.trace import SpanKind

from hub_common.settings import KafkaSettings
from hub_common.telemetry import JsonFormatter
from hub_gateway.settings import GatewaySettings
from support.gateway_it import read_commands, running_gateway
from support.gateway_tracing import collected_spans

BET: dict[str, Any] = {"refId": "bet-1", "type": "BET", "playerId": "p-1", "amountCents": 250, "currency": "EUR"}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The gateway's log lines as the service writes them (JsonFormatter), at INFO."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("gateway"))
    logger = logging.getLogger("hub_gateway")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def test_command_carries_the_http_requests_trace(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, json_log: io.StringIO
) -> None:
    with collected_spans() as exporter:
        async with running_gateway(gateway_settings) as gw:
            response = await gw.client.post_transaction(
                BET, idempotency_key="k-1", headers={"X-Correlation-ID": "c-77"}
            )
        spans = exporter.get_finished_spans()
    assert response.status == 202

    [server] = [s for s in spans if s.kind is SpanKind.SERVER and s.name == "POST /v1/transactions"]
    [producer] = [s for s in spans if s.kind is SpanKind.PRODUCER]
    assert server.attributes is not None and server.attributes["hub.correlation_id"] == "c-77"
    assert server.attributes["http.response.status_code"] == 202
    assert producer.context is not None and server.context is not None
    assert producer.context.trace_id == server.context.trace_id
    assert producer.parent is not None and producer.parent.span_id == server.context.span_id

    [record] = await read_commands(kafka_settings)
    version, trace_id, span_id, _ = record.headers["traceparent"].decode().split("-")
    assert version == "00"
    assert int(trace_id, 16) == server.context.trace_id
    assert int(span_id, 16) == producer.context.span_id
    assert record.correlation_id == "c-77"

    lines = [orjson.loads(line) for line in json_log.getvalue().splitlines()]
    request_lines = [line for line in lines if line.get("refId") == "bet-1"]
    assert [line["msg"] for line in request_lines] == ["transaction admitted"]
    for line in request_lines:
        assert line["correlationId"] == "c-77"
        assert int(line["traceId"], 16) == server.context.trace_id


async def test_rejected_requests_log_their_correlation_id_but_no_secret(
    gateway_settings: GatewaySettings, json_log: io.StringIO
) -> None:
    async with running_gateway(gateway_settings) as gw:
        forged = await gw.client.request(
            "GET", "/v1/transactions/bet-1", headers={"X-Correlation-ID": "c-88", "X-Signature": "sha256=00"}
        )
    assert (forged.status, forged.headers["X-Correlation-ID"]) == (401, "c-88")
    lines = [orjson.loads(line) for line in json_log.getvalue().splitlines()]
    rejected = [line for line in lines if line["msg"] == "request signature rejected"]
    assert [line["correlationId"] for line in rejected] == ["c-88"]
    text = json_log.getvalue()
    for client_secrets in gateway_settings.clients.values():
        for secret in client_secrets:
            assert secret.get_secret_value() not in text
    assert "sha256=00" not in text


async def test_the_callers_trace_context_is_taken_only_after_authentication(
    gateway_settings: GatewaySettings,
) -> None:
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    traceparent = {"traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01"}
    with collected_spans() as exporter:
        async with running_gateway(gateway_settings) as gw:
            forged = await gw.client.request(
                "GET", "/v1/transactions/bet-1", headers={**traceparent, "X-Signature": "sha256=00"}
            )
            signed = await gw.client.request("GET", "/v1/transactions/bet-1", headers=traceparent)
        spans = [s for s in exporter.get_finished_spans() if s.name == "GET /v1/transactions/{ref_id}"]
    assert (forged.status, signed.status) == (401, 404)
    [refused_span] = [s for s in spans if s.attributes and s.attributes["http.response.status_code"] == 401]
    [served_span] = [s for s in spans if s.attributes and s.attributes["http.response.status_code"] == 404]
    assert refused_span.context is not None and served_span.context is not None
    # Refused: a trace of the Hub's own, whatever the request claimed.
    assert refused_span.parent is None
    assert format(refused_span.context.trace_id, "032x") != caller_trace
    # Authenticated: joined to the caller's trace.
    assert format(served_span.context.trace_id, "032x") == caller_trace
    assert served_span.parent is not None and served_span.parent.is_remote
