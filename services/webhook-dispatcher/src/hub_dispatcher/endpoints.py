"""Per-client endpoint state: URL, secrets, timeout, a concurrency limit and a circuit breaker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from prometheus_client import Counter, Histogram
from pydantic import SecretStr

from hub_common.breaker import BreakerState, CircuitBreaker
from hub_common.schemas import Outcome
from hub_common.signing import WebhookSigner
from hub_dispatcher import metrics
from hub_dispatcher.settings import DispatcherSettings

log = logging.getLogger(__name__)


@dataclass
class Endpoint:
    client_id: str
    url: str
    secrets: list[SecretStr]
    timeout_s: float
    limit: asyncio.Semaphore
    breaker: CircuitBreaker
    # Built once, not per delivery: the signing keys, the request timeout, the endpoint's metric children.
    signer: WebhookSigner = field(init=False)
    client_timeout: aiohttp.ClientTimeout = field(init=False)
    latency: Histogram = field(init=False)
    _results: dict[str, Counter] = field(init=False, default_factory=dict)
    _retries: dict[Outcome, Histogram] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.signer = WebhookSigner(self.secrets)
        self.client_timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        self.latency = metrics.LATENCY.labels(endpoint=self.client_id)
        # Every result's child exists from the start at 0, so increase()/rate() see the first event of each.
        for result in (*(o.value for o in Outcome), "circuit_open"):
            self._results[result] = metrics.DELIVERIES.labels(endpoint=self.client_id, result=result)
        for outcome in (Outcome.DELIVERED, Outcome.DEAD_LETTER):
            self._retries[outcome] = metrics.RETRIES_PER_DELIVERY.labels(self.client_id, outcome.value)

    def ended(self, outcome: Outcome, attempt: int) -> None:
        """A delivery ended (delivered or dead-lettered) at its `attempt`-th attempt."""
        histogram = self._retries.get(outcome)
        if histogram is not None:
            histogram.observe(attempt - 1)

    def count(self, result: str) -> None:
        child = self._results.get(result)
        if child is None:
            child = self._results[result] = metrics.DELIVERIES.labels(endpoint=self.client_id, result=result)
        child.inc()


def _breaker_changed(breaker: CircuitBreaker, previous: BreakerState) -> None:
    """An endpoint's circuit opening or closing is visible: a log line each way, the state gauge, the counter."""
    name, state = breaker.name, breaker.state
    if state is BreakerState.OPEN:
        log.warning(
            "webhook circuit opened", extra={"endpoint": name, "failures": breaker.failures, "openS": breaker.open_s}
        )
    elif state is BreakerState.CLOSED:
        log.info("webhook circuit closed", extra={"endpoint": name, "from": previous.name})
    metrics.BREAKER_STATE.labels(endpoint=name).set(int(state))
    metrics.BREAKER_TRANSITIONS.labels(endpoint=name, state=state.name.lower()).inc()


class Endpoints:
    def __init__(self, by_client: Mapping[str, Endpoint]) -> None:
        self._by_client = dict(by_client)

    @classmethod
    def from_settings(cls, settings: DispatcherSettings) -> Endpoints:
        built = {}
        for client_id, cfg in settings.endpoints.items():
            built[client_id] = Endpoint(
                client_id=client_id,
                url=cfg.url,
                secrets=list(cfg.secrets),
                timeout_s=cfg.timeout_s or settings.timeout_s,
                limit=asyncio.Semaphore(cfg.max_concurrency or settings.max_concurrency_per_endpoint),
                breaker=CircuitBreaker(
                    client_id,
                    failure_threshold=settings.breaker_failure_threshold,
                    quiet_s=settings.breaker_quiet_s,
                    open_s=settings.breaker_open_s,
                    on_change=_breaker_changed,
                ),
            )
            metrics.BREAKER_STATE.labels(endpoint=client_id).set(int(BreakerState.CLOSED))
        return cls(built)

    def get(self, client_id: str) -> Endpoint | None:
        return self._by_client.get(client_id)
