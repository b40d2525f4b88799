"""An endpoint's breaker opening and closing is visible: a log line each way, the state gauge, the counter."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from hub_dispatcher.endpoints import Endpoint, Endpoints
from hub_dispatcher.settings import DispatcherSettings, EndpointSettings


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _endpoint(name: str, **breaker: Any) -> Endpoint:
    """The endpoint `name` as the dispatcher builds it from its settings, with these breaker settings."""
    settings = DispatcherSettings(
        endpoints={name: EndpointSettings(url="http://127.0.0.1:9/webhooks", secrets=[SecretStr("s")])},
        **breaker,
    )
    endpoint = Endpoints.from_settings(settings).get(name)
    assert endpoint is not None
    return endpoint


async def test_open_and_close_are_logged_and_exported(caplog: pytest.LogCaptureFixture) -> None:
    endpoint = _endpoint("rgs-signals", breaker_failure_threshold=2, breaker_open_s=0.01)
    opened_before = _sample("hub_webhook_circuit_transitions_total", endpoint="rgs-signals", state="open")
    assert _sample("hub_webhook_circuit_state", endpoint="rgs-signals") == 0

    with caplog.at_level(logging.INFO, logger="hub_dispatcher.endpoints"):
        endpoint.breaker.record_failure()
        endpoint.breaker.record_failure()
        assert _sample("hub_webhook_circuit_state", endpoint="rgs-signals") == 2
        await asyncio.sleep(0.05)  # past open_s: one half-open probe
        assert endpoint.breaker.allow()
        endpoint.breaker.record_success()

    assert _sample("hub_webhook_circuit_state", endpoint="rgs-signals") == 0
    assert _sample("hub_webhook_circuit_transitions_total", endpoint="rgs-signals", state="open") == opened_before + 1
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("WARNING", "webhook circuit opened") in messages
    assert ("INFO", "webhook circuit closed") in messages


def test_a_streak_of_failures_between_successes_leaves_the_endpoint_circuit_closed() -> None:
    """The settings' quiet period reaches the endpoint's breaker: a receiver that rejects some events and
    accepts the others keeps getting first attempts (docs/contract.md section 4)."""
    endpoint = _endpoint("rgs-partial", breaker_failure_threshold=2, breaker_quiet_s=60)
    endpoint.breaker.record_success()
    for _ in range(10):
        endpoint.breaker.record_failure()
    assert endpoint.breaker.allow()
    assert _sample("hub_webhook_circuit_state", endpoint="rgs-partial") == 0
