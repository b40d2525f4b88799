"""The metric names the Hub exports, from the code itself, and the metric names a PromQL query uses.

`exported_names()` imports every service's composition root (`<module>.app` of each service the stack launcher
starts), which imports every module that defines a metric, and reads the names off the Prometheus registry: the
same names `/metrics` shows. Nothing here lists metrics by hand. Used by `make check-deploy` (the dashboard) and
the unit test of the alert rules.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import promql_parser
from prometheus_client import REGISTRY

from hub_devstack.stack_config import SERVICES

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "integration-hub.json"
# Sample names each family type adds to its family name in the exposition format.
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("_sum", "_count"),
}
# Series Prometheus makes itself (not the services'): queries may use them.
PROMETHEUS_OWN = frozenset({"up"})
# Grafana's variables, replaced by a duration so that a dashboard query parses as PromQL.
_GRAFANA_RANGES = ("$__rate_interval", "$__interval", "$__range")


def exported_names() -> set[str]:
    """What a query may name: every metric some service exports, and Prometheus' own series."""
    for spec in SERVICES:
        importlib.import_module(f"{spec.module}.app")
    names: set[str] = set(PROMETHEUS_OWN)
    for family in REGISTRY.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def parse(expr: str) -> Any:
    """The query's syntax tree (ValueError on a syntax error); Grafana's range variables count as 5m."""
    for variable in _GRAFANA_RANGES:
        expr = expr.replace(variable, "5m")
    return promql_parser.parse(expr)


def metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(parse(expr), visit)
    return names


def threshold(expr: str) -> float | None:
    """The limit an alert compares against at its top (`... > 100`), if it has one (`up == 0` is a state)."""
    tree = parse(expr)
    if (
        isinstance(tree, promql_parser.BinaryExpr)
        and str(tree.op) in (">", ">=", "<", "<=")
        and isinstance(tree.rhs, promql_parser.NumberLiteral)
    ):
        return float(tree.rhs.val)
    return None


def panels(dashboard: Path = DASHBOARD) -> list[dict[str, Any]]:
    """The dashboard's panels (rows' nested panels included)."""
    document = json.loads(dashboard.read_text())
    found: list[dict[str, Any]] = []
    for panel in document["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def queries(panel: dict[str, Any]) -> list[str]:
    return [str(target["expr"]) for target in panel.get("targets", []) if target.get("expr")]
