"""The alert rules (deploy/prometheus/alerts.yml) name only metrics the code exports."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = RULES.with_name("alerts.test.yml")
# The modules that define the Hub's metrics (importing them registers the metrics).
METRIC_MODULES = (
    "hub_common.db",
    "hub_common.operator.client",
    "hub_common.operator.budget",
    "hub_gateway.middleware",
    "hub_gateway.service",
    "hub_ledger.metrics",
    "hub_ledger.gauges",
    "hub_dispatcher.metrics",
    "hub_reconciler.metrics",
    "hub_common.kafka",
)
# Prometheus' own series and PromQL functions are not ours to export.
BUILTIN = {"up", "time", "rate", "increase", "sum", "max", "by", "clamp_min", "or", "absent"}
_NAME = re.compile(r"\b([a-z_][a-z0-9_]*)\s*(?=\{|\[|\)|$|\s*(?:==|>=|>|<|/|-))")


def _exported() -> set[str]:
    for module in METRIC_MODULES:
        importlib.import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
    return names


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
    # Label matchers and strings hold values, not metric names.
    expr = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\bby\s*\([^)]*\)", " ", str(rule["expr"]))
    used = {m for m in _NAME.findall(expr) if m not in BUILTIN}
    missing = used - _exported()
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


def test_increase_alerts_count_children_that_exist_from_the_start() -> None:
    """increase() misses a labelled counter's first event unless the child exists (at 0) before it."""
    _exported()
    expected = {
        ("hub_ledger_credit_failed_total", (("type", "WIN"),)),
        ("hub_ledger_credit_failed_total", (("type", "REFUND"),)),
        ("hub_reconciliation_daily_runs_total", (("outcome", "failed"),)),
        ("gateway_http_requests_total", (("method", "POST"), ("route", "/v1/transactions"), ("status", "409"))),
        ("hub_operator_calls_total", (("endpoint", "post"), ("outcome", "429"))),
    }
    for name, labels in expected:
        assert REGISTRY.get_sample_value(name, dict(labels)) is not None, (name, labels)
