"""`make check-deploy`: render and check everything in deploy/ with the tools SREs use.

1. Render base and both overlays (kubectl kustomize, or kustomize build).
2. Built-in kinds: kubernetes-validate --strict for each Kubernetes version in K8S_VERSIONS.
   Custom resources: check-jsonschema against deploy/schemas (a kind with neither fails the check).
3. kube-score on the production overlay: any CRITICAL fails (deliberate ignores are annotated in the manifests).
4. promtool check rules + test rules; the PrometheusRule is the one generated from alerts.yml.
   The Grafana dashboard (deploy/grafana): valid JSON, every query parses as PromQL and names only metrics the
   services export (read off the code's registry, scripts/metrics_catalogue.py), a panel for every metric of the
   runbook, and every alert's threshold drawn on the panel that names it.
5. The manifests agree with the code: KafkaTopics = hub_common.kafka.hub_topics() with topic_configs(), a
   KafkaUser per service, the migration Job named after the image tag, no Secret in the production overlay.
6. hadolint on every Dockerfile; docker-compose.yml against the Compose specification.

Tools come from scripts/deploy-tools.sh (DEPLOY_TOOLS_BIN); the Python ones from the locked dev group.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from hub_common.kafka import hub_topics, topic_configs
from hub_dispatcher.settings import DEFAULT_RETRY_SCHEDULE_MS
from scripts import metrics_catalogue

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
SCHEMAS = ROOT / "deploy" / "schemas"
PROMETHEUS = ROOT / "deploy" / "prometheus"
OVERLAYS = ("base", "overlays/production", "overlays/demo")
# Opt-in components no overlay includes: each is checked on top of the production overlay.
OPTIONAL_COMPONENTS = ("components/daily-cronjob",)
# The oldest Kubernetes the manifests support (the preStop sleep action is on by default from 1.30) and the
# newest kubernetes-validate knows.
K8S_VERSIONS = ("1.30.0", "1.37.0")
SERVICES = ("gateway", "ledger", "webhook-dispatcher", "reconciler")
Manifest = dict[str, Any]


class Failed(Exception):
    pass


def tool(name: str) -> str:
    """A tool from DEPLOY_TOOLS_BIN, else from the virtualenv or PATH."""
    for directory in (os.environ.get("DEPLOY_TOOLS_BIN"), str(Path(sys.executable).parent)):
        if directory and (Path(directory) / name).exists():
            return str(Path(directory) / name)
    found = shutil.which(name)
    if found is None:
        raise Failed(f"{name} is not installed: run scripts/deploy-tools.sh (make check-deploy does)")
    return found


def run(*command: str, what: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if result.returncode != 0:
        raise Failed(f"{what} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def render(overlay: str, root: Path = K8S) -> list[Manifest]:
    path = str(root / overlay)
    kustomize = shutil.which("kustomize") or (Path(os.environ.get("DEPLOY_TOOLS_BIN", "")) / "kustomize")
    if shutil.which("kubectl"):
        text = run("kubectl", "kustomize", path, what=f"kubectl kustomize {overlay}")
    else:
        text = run(str(kustomize), "build", path, what=f"kustomize build {overlay}")
    return [doc for doc in yaml.safe_load_all(text) if doc]


def with_component(component: str, workdir: Path) -> list[Manifest]:
    """The production overlay with an opt-in component, as a site overlay would include it (with the image)."""
    site = workdir / component.replace("/", "-")
    site.mkdir()
    production = yaml.safe_load((K8S / "overlays/production/kustomization.yaml").read_text())
    (site / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                # kustomize takes relative paths only.
                "resources": [os.path.relpath(K8S / "overlays/production", site)],
                "components": [os.path.relpath(K8S / component, site)],
                "images": production["images"],
            }
        )
    )
    return render(site.name, workdir)


def schema_for(manifest: Manifest) -> Path | None:
    group = manifest["apiVersion"].rpartition("/")[0]
    if not group or "." not in group or group.endswith(".k8s.io"):
        return None  # a built-in kind
    version = manifest["apiVersion"].rpartition("/")[2]
    path = SCHEMAS / f"{manifest['kind'].lower()}-{group}-{version}.yaml"
    if not path.exists():
        raise Failed(f"{manifest['kind']} ({manifest['apiVersion']}) has no schema in deploy/schemas")
    return path


def validate(overlay: str, manifests: list[Manifest], workdir: Path) -> None:
    builtin: list[Manifest] = []
    custom: dict[Path, list[Manifest]] = {}
    for manifest in manifests:
        schema = schema_for(manifest)
        if schema is None:
            builtin.append(manifest)
        else:
            custom.setdefault(schema, []).append(manifest)
    name = overlay.replace("/", "-")
    builtin_file = workdir / f"{name}.yaml"
    builtin_file.write_text(yaml.safe_dump_all(builtin))
    for version in K8S_VERSIONS:
        out = run(
            tool("kubernetes-validate"), "--strict", "-k", version, "--quiet", str(builtin_file),
            what=f"kubernetes-validate {overlay} (Kubernetes {version})",
        )  # fmt: skip
        if "WARN" in out:  # an unknown built-in kind would only warn
            raise Failed(f"kubernetes-validate {overlay} (Kubernetes {version}):\n{out}")
    for schema, items in custom.items():
        files = []
        for index, manifest in enumerate(items):
            path = workdir / f"{name}-{schema.stem}-{index}.json"
            path.write_text(json.dumps(manifest))
            files.append(str(path))
        run(tool("check-jsonschema"), "--schemafile", str(schema), *files, what=f"{schema.name} on {overlay}")
    print(f"  {overlay}: {len(builtin)} built-in resources, {len(manifests) - len(builtin)} custom resources valid")


def kube_score(manifests: list[Manifest], workdir: Path, name: str = "production") -> None:
    path = workdir / f"{name.replace('/', '-')}-all.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    result = subprocess.run(
        [tool("kube-score"), "score", "--output-format", "ci", "--enable-optional-test", "container-seccomp-profile",
         str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    critical = [line for line in result.stdout.splitlines() if line.startswith("[CRITICAL]")]
    if critical or result.returncode not in (0, 1):
        raise Failed(f"kube-score on {name}:\n" + "\n".join(critical or [result.stderr]))
    warnings = sum(line.startswith("[WARNING]") for line in result.stdout.splitlines())
    print(f"  kube-score {name}: no CRITICAL, {warnings} warning(s)")


def prometheus() -> None:
    promtool = tool("promtool")
    run(promtool, "check", "rules", str(PROMETHEUS / "alerts.yml"), what="promtool check rules")
    out = run(promtool, "test", "rules", str(PROMETHEUS / "alerts.test.yml"), what="promtool test rules")
    run(sys.executable, str(ROOT / "scripts" / "prometheus_rule.py"), "--check", what="PrometheusRule up to date")
    print("  promtool: rules valid, " + " ".join(out.split()[-1:]).lower() + "; PrometheusRule = alerts.yml")


RUNBOOK = ROOT / "docs" / "runbook.md"


def runbook_metrics() -> list[str]:
    """The bullets of the runbook's "Key Metrics to Monitor"."""
    text = RUNBOOK.read_text()
    section = text.split("### Key Metrics to Monitor", 1)[1].split("### Recommended Alerts", 1)[0]
    return [line[2:].strip() for line in section.splitlines() if line.startswith("- ")]


def dashboard(demo: list[Manifest]) -> None:
    try:
        panels = metrics_catalogue.panels()
    except (ValueError, KeyError) as exc:
        raise Failed(f"{metrics_catalogue.DASHBOARD.name} is not a dashboard: {exc}") from exc
    exported = metrics_catalogue.exported_names()
    queries = 0
    for panel in panels:
        for expr in metrics_catalogue.queries(panel):
            queries += 1
            try:
                unknown = metrics_catalogue.metric_names(expr) - exported
            except ValueError as exc:
                raise Failed(f"dashboard panel {panel['title']!r}: not PromQL: {expr}\n{exc}") from exc
            if unknown:
                raise Failed(
                    f"dashboard panel {panel['title']!r} queries metrics no service exports: {sorted(unknown)}"
                )
    titles = {p["title"] for p in panels}
    missing = [m for m in runbook_metrics() if m not in titles]
    if missing:
        raise Failed(f"the runbook's metrics without a dashboard panel: {missing}")
    alerts = {r["alert"]: r["expr"] for g in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
              for r in g["rules"]}  # fmt: skip
    drawn = set()
    for panel in panels:
        for name in (line.removeprefix("Alert: ") for line in panel.get("description", "").splitlines()
                     if line.startswith("Alert: ")):  # fmt: skip
            if name not in alerts:
                raise Failed(f"dashboard panel {panel['title']!r} names an unknown alert {name}")
            limit = metrics_catalogue.threshold(alerts[name])
            steps = panel["fieldConfig"]["defaults"].get("thresholds", {}).get("steps", [])
            style = panel["fieldConfig"]["defaults"]["custom"].get("thresholdsStyle", {}).get("mode", "off")
            if limit is not None and (limit not in [s["value"] for s in steps] or style == "off"):
                raise Failed(f"dashboard panel {panel['title']!r} does not draw {name}'s threshold {limit}")
            drawn.add(name)
    undrawn = [a for a, expr in alerts.items() if a not in drawn and metrics_catalogue.threshold(expr) is not None]
    if undrawn:
        raise Failed(f"alerts whose threshold no dashboard panel draws: {undrawn}")
    if not any(m["kind"] == "ConfigMap" and m["metadata"].get("labels", {}).get("grafana_dashboard") for m in demo):
        raise Failed("the demo overlay has no grafana_dashboard ConfigMap")
    print(
        f"  dashboard: {len(panels)} panels, {queries} queries on exported metrics, thresholds of {len(drawn)} alerts"
    )


def of_kind(manifests: list[Manifest], kind: str) -> Iterator[Manifest]:
    return (m for m in manifests if m["kind"] == kind)


def agreement(production: list[Manifest], demo: list[Manifest]) -> None:
    topics = {m["spec"]["topicName"]: m["spec"] for m in of_kind(production, "KafkaTopic")}
    wanted = set(hub_topics(len(DEFAULT_RETRY_SCHEDULE_MS)))
    if set(topics) != wanted:
        missing, extra = sorted(wanted - set(topics)), sorted(set(topics) - wanted)
        raise Failed(f"KafkaTopics differ from hub_topics(): missing {missing}, extra {extra}")
    for name, spec in topics.items():
        if {k: str(v) for k, v in spec["config"].items()} != topic_configs(name, spec["replicas"]):
            raise Failed(f"KafkaTopic {name}: config differs from hub_common.kafka.topic_configs")
        if spec["replicas"] != 3 or spec["config"]["min.insync.replicas"] != "2":
            raise Failed(f"KafkaTopic {name}: production needs replicas 3 and min.insync.replicas 2")
    users = {m["metadata"]["name"] for m in of_kind(production, "KafkaUser")}
    if users != {f"hub-{s}" for s in (*SERVICES, "hubctl")}:
        raise Failed(f"KafkaUsers {sorted(users)}: one per service and hubctl expected")
    if any(True for _ in of_kind(production, "Secret")):
        raise Failed("the production overlay writes a Secret: reference it (ExternalSecret) instead")
    for manifests in (production, demo):
        (job,) = of_kind(manifests, "Job")
        image = job["spec"]["template"]["spec"]["containers"][0]["image"]
        tag = image.rpartition(":")[2].split("@")[0]
        if not job["metadata"]["name"].endswith("-" + tag):
            raise Failed(f"migration Job {job['metadata']['name']} is not named after the image tag {tag}")
    names = {m["metadata"]["name"] for m in of_kind(demo, "Deployment")}
    if names != {*SERVICES, "mock-operator", "mock-rgs"} or any(n.startswith("mock") for n in _deployments(production)):
        raise Failed("mocks belong to the demo overlay only")
    print(f"  manifests agree with the code: {len(topics)} topics, {len(users)} Kafka users, migration Job named")


def _deployments(manifests: list[Manifest]) -> set[str]:
    return {m["metadata"]["name"] for m in of_kind(manifests, "Deployment")}


def images_and_compose() -> None:
    dockerfiles = sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("**/Dockerfile*") if ".venv" not in p.parts)
    run(tool("hadolint"), *dockerfiles, what="hadolint")
    run(
        tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "docker-compose.yml",
        what="docker-compose.yml against the Compose specification",
    )  # fmt: skip
    print(f"  hadolint: {', '.join(dockerfiles)} clean; docker-compose.yml valid")


def main() -> int:
    try:
        with tempfile.TemporaryDirectory(prefix="check-deploy-") as tmp:
            workdir = Path(tmp)
            rendered = {overlay: render(overlay) for overlay in OVERLAYS}
            for overlay, manifests in rendered.items():
                validate(overlay, manifests, workdir)
            kube_score(rendered["overlays/production"], workdir)
            for component in OPTIONAL_COMPONENTS:
                manifests = with_component(component, workdir)
                validate(f"production+{component}", manifests, workdir)
                kube_score(manifests, workdir, f"production+{component}")
            prometheus()
            dashboard(rendered["overlays/demo"])
            agreement(rendered["overlays/production"], rendered["overlays/demo"])
            images_and_compose()
    except Failed as exc:
        print(f"check-deploy: {exc}", file=sys.stderr)
        return 1
    print("check-deploy: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
