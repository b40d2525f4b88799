"""Render deploy/prometheus/alerts.yml (the one source of truth) as the Prometheus operator's PrometheusRule.

uv run python scripts/prometheus_rule.py           # rewrite the generated manifest
uv run python scripts/prometheus_rule.py --check   # exit 1 when the manifest differs from alerts.yml
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "deploy" / "prometheus" / "alerts.yml"
TARGET = ROOT / "deploy" / "k8s" / "components" / "monitoring" / "prometheus-rule.yaml"
HEADER = (
    "# GENERATED from deploy/prometheus/alerts.yml by scripts/prometheus_rule.py: edit that file, then run\n"
    "# `uv run python scripts/prometheus_rule.py` (`make check-deploy` fails while the two differ).\n"
)


def render(source: Path = SOURCE) -> str:
    rules: dict[str, Any] = yaml.safe_load(source.read_text())
    document = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "integration-hub", "labels": {"app.kubernetes.io/name": "integration-hub-alerts"}},
        "spec": {"groups": rules["groups"]},
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False, width=120)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    wanted = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != wanted:
            print(
                f"{TARGET.relative_to(ROOT)} is out of date: run uv run python scripts/prometheus_rule.py",
                file=sys.stderr,
            )
            return 1
        return 0
    TARGET.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
