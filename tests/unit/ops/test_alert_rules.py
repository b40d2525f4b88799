"""The alert rules (deploy/prometheus/alerts.yml) name only metrics the code exports."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

from hub_common.operator import OperatorClient, OperatorSettings
from scripts import metrics_catalogue

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = RULES.with_name("alerts.test.yml")


def _exported() -> set[str]:
    return metrics_catalogue.exported_names()


def _rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_rule_has_a_severity_and_a_summary() -> None:
    rules = _rules()
    assert len(rules) >= 12
    for rule in rules:
        labels, annotations = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and labels["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert isinstance(annotations, dict) and annotations["summary"], rule["alert"]


@pytest.mark.parametrize("rule", _rules(), ids=lambda r: str(r["alert"]))
def test_rule_metrics_are_exported(rule: dict[str, object]) -> None:
    missing = metrics_catalogue.metric_names(str(rule["expr"])) - _exported()
    assert not missing, f"{rule['alert']} uses metrics no module exports: {sorted(missing)}"


def test_every_alert_has_a_firing_and_a_quiet_promtool_case() -> None:
    """`promtool test rules` (make check-deploy) runs the cases; here: none is missing."""
    document = yaml.safe_load(RULE_TESTS.read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for test in document["tests"]:
        for case in test["alert_rule_test"]:
            (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    alerts = {str(rule["alert"]) for rule in _rules()}
    assert alerts - firing == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown quiet"


async def test_increase_alerts_count_children_that_exist_from_the_start() -> None:
    """increase() misses a labelled counter's first event unless the child exists (at 0) before it."""
    _exported()
    # The operator client creates its caller's children when it is built (the service's start).
    await OperatorClient(OperatorSettings(url="http://127.0.0.1:9"), caller="ledger").close()
    expected = {
        ("hub_ledger_credit_failed_total", (("type", "WIN"),)),
        ("hub_ledger_credit_failed_total", (("type", "REFUND"),)),
        ("hub_reconciliation_daily_runs_total", (("outcome", "failed"),)),
        ("gateway_http_requests_total", (("method", "POST"), ("route", "/v1/transactions"), ("status", "409"))),
        ("hub_operator_calls_total", (("caller", "ledger"), ("endpoint", "post"), ("outcome", "429"))),
        ("hub_ledger_transactions_total", (("type", "BET"), ("status", "FAILED"))),
    }
    for name, labels in expected:
        assert REGISTRY.get_sample_value(name, dict(labels)) is not None, (name, labels)
