"""Every running service's /metrics, scraped after one transaction went through: each metric the dashboard (the
runbook's metrics, deploy/grafana) and the alert rules query is exported by some service, and the runbook's new
ones are there where they belong: statement latency in every Hub service, consumer lag for every group, operator
calls under each caller's name, transaction duration, webhook retries, index usage."""

from __future__ import annotations

import uuid

import aiohttp
import orjson
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from hub_devstack.stack import RunningStack
from hub_gateway.client import GatewayClient
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import PlayerSeed
from scripts import metrics_catalogue
from support.waits import eventually

HUB_SERVICES = ("gateway", "ledger", "webhook-dispatcher", "reconciler")
Samples = dict[str, list[tuple[dict[str, str], float]]]


async def _scrape(session: aiohttp.ClientSession, url: str) -> tuple[set[str], Samples]:
    """Family and sample names (`# TYPE` lines count: a labelled metric without children is still exported)."""
    async with session.get(url + "/metrics") as response:
        text = await response.text()
    names: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in ("_total", "_bucket", "_sum", "_count"))
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return names, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, []) if all(found.get(k) == want for k, want in labels.items()))


def _queried() -> set[str]:
    names: set[str] = set()
    for panel in metrics_catalogue.panels():
        for expr in metrics_catalogue.queries(panel):
            names |= metrics_catalogue.metric_names(expr)
    rules = yaml.safe_load((metrics_catalogue.ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            names |= metrics_catalogue.metric_names(rule["expr"])
    return names - metrics_catalogue.PROMETHEUS_OWN


async def test_every_runbook_metric_is_scraped_from_the_running_services(stack: RunningStack) -> None:
    facts = stack.facts
    urls = dict(facts.service_urls)
    player, ref_id = f"m-{uuid.uuid4().hex[:8]}", f"bet-{uuid.uuid4().hex[:12]}"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        await OperatorAdminClient(session, facts.operator_url).seed_players(
            [PlayerSeed(player_id=player, balance_cents=1_000, currency="EUR")]
        )
        gateway = GatewayClient(session, facts.hub_url, facts.hub_client_id, SecretStr(facts.hub_client_secret))
        body = {"refId": ref_id, "type": "BET", "playerId": player, "amountCents": 100, "currency": "EUR"}
        answer = await gateway.post_transaction(orjson.dumps(body), idempotency_key=ref_id)
        assert answer.status == 201, answer.body
        scraped: dict[str, tuple[set[str], Samples]] = {}

        async def measured() -> bool:
            for service in HUB_SERVICES:
                scraped[service] = await _scrape(session, urls[service])
            ledger, dispatcher = scraped["ledger"][1], scraped["webhook-dispatcher"][1]
            return (
                _value(ledger, "hub_transaction_duration_seconds_count", type="BET", status="COMPLETED") >= 1
                and _value(dispatcher, "hub_webhook_retries_per_delivery_count", outcome="delivered") >= 1
                and bool(ledger.get("hub_db_index_scans_total"))
            )

        await eventually(measured, timeout_s=60, step_s=0.5, what="the transaction's metrics")

    exported = set().union(*(names for names, _ in scraped.values()))
    assert _queried() - exported == set(), "queried by the dashboard or the alerts, exported by no running service"
    prefix = facts.kafka_topic_prefix
    for service in HUB_SERVICES:
        names, samples = scraped[service]
        assert _value(samples, "hub_db_query_duration_seconds_count") > 0, service
        assert "hub_db_pool_connections" in names, service
    groups = {
        "ledger": f"{prefix}hub-ledger",
        "webhook-dispatcher": f"{prefix}hub-dispatcher",
        "reconciler": f"{prefix}hub-reconciler",
    }
    for service, group in groups.items():
        assert any(labels["group"] == group for labels, _ in scraped[service][1]["hub_kafka_consumer_lag"]), service
    for service in ("ledger", "gateway", "reconciler"):
        callers = {labels["caller"] for labels, _ in scraped[service][1]["hub_operator_calls_total"]}
        assert callers == {service}, (service, callers)
    assert (
        _value(scraped["ledger"][1], "hub_operator_calls_total", caller="ledger", endpoint="post", outcome="200") >= 1
    )
    statements = {labels["statement"] for labels, _ in scraped["ledger"][1]["hub_db_query_duration_seconds_count"]}
    assert {"commit", "select transactions"} <= statements
