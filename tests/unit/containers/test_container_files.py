"""The Dockerfiles, the compose file and the Makefile agree with each other and with the workspace.

What these files do when run is proven by `make test-docker` (tests/containers); these checks catch drift
without Docker: a new workspace member missing from the image, image names that differ between the devstack,
the Makefile and compose, a base image that is not pinned.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub_common.services import SERVICES
from hub_devstack.infra import BUILT_KAFKA_IMAGE, BUILT_POSTGRES_IMAGE

ROOT = Path(__file__).resolve().parents[3]
DIGEST = re.compile(r"^[a-z0-9./-]+:[\w.-]+@sha256:[0-9a-f]{64}$")
INFRA_DOCKERFILES = [ROOT / "infra" / "base" / "Dockerfile", *sorted((ROOT / "infra").glob("*/Dockerfile"))]
# Services that run no HTTP server and are not in hub_common.services.
ONE_SHOT = {"migrate"}


def _arg_default(dockerfile: Path, name: str) -> str:
    found = re.search(rf"^ARG {name}=(\"[^\"]*\"|\S+)$", dockerfile.read_text(), re.MULTILINE)
    assert found is not None, f"{dockerfile}: no ARG {name}=<default>"
    return found.group(1)


def _workspace_members() -> set[str]:
    names = set()
    for pyproject in [*ROOT.glob("libs/*/pyproject.toml"), *ROOT.glob("services/*/pyproject.toml")]:
        names.add(tomllib.loads(pyproject.read_text())["project"]["name"])
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_image_installs_every_workspace_member_but_the_devstack() -> None:
    packages = set(_arg_default(ROOT / "Dockerfile", "HUB_PACKAGES").strip('"').split())
    assert packages == _workspace_members() - {"hub-devstack"}


def test_every_dockerfile_builds_from_pinned_build_args_without_a_syntax_line() -> None:
    for dockerfile in [ROOT / "Dockerfile", *INFRA_DOCKERFILES]:
        text = dockerfile.read_text()
        assert not text.startswith("# syntax="), f"{dockerfile}: a syntax line pulls a frontend image"
        for base in re.findall(r"^FROM (\S+)", text, re.MULTILINE):
            assert base.startswith("${") or base in re.findall(r"AS (\S+)", text), f"{dockerfile}: FROM {base}"
    assert DIGEST.match(_arg_default(ROOT / "Dockerfile", "PYTHON_BASE"))
    debian = {_arg_default(path, "DEBIAN_BASE") for path in INFRA_DOCKERFILES}
    assert len(debian) == 1, f"the infra Dockerfiles disagree on the Debian base: {debian}"
    assert DIGEST.match(debian.pop())


def test_the_runtime_image_runs_as_a_user_with_a_healthcheck() -> None:
    runtime = (ROOT / "Dockerfile").read_text().split("# ---- runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.MULTILINE)
    assert 'CMD ["python", "-m", "hub_common.healthcheck"]' in runtime
    assert "HEALTHCHECK" in runtime


def test_image_names_agree_between_devstack_makefile_and_compose(compose: dict[str, Any]) -> None:
    makefile = (ROOT / "Makefile").read_text()
    defaults = dict(re.findall(r"^(HUB_\w*IMAGE) \?= (\S+)$", makefile, re.MULTILINE))
    assert defaults["HUB_KAFKA_IMAGE"] == BUILT_KAFKA_IMAGE
    assert defaults["HUB_POSTGRES_IMAGE"] == BUILT_POSTGRES_IMAGE
    images = {name: service["image"] for name, service in compose["services"].items()}
    assert images["kafka"] == f"${{HUB_KAFKA_IMAGE:-{BUILT_KAFKA_IMAGE}}}"
    assert images["postgres"] == f"${{HUB_POSTGRES_IMAGE:-{BUILT_POSTGRES_IMAGE}}}"
    hub = {image for name, image in images.items() if name not in ("kafka", "postgres")}
    assert hub == {f"${{HUB_IMAGE:-{defaults['HUB_IMAGE']}}}"}


def test_compose_runs_each_service_read_only_on_its_own_loopback_port(compose: dict[str, Any]) -> None:
    by_module = {s.module: s for s in SERVICES}
    hub = {name: s for name, s in compose["services"].items() if name not in ("kafka", "postgres")}
    assert len(hub) == len(SERVICES) + len(ONE_SHOT)
    for name, service in hub.items():
        assert service["read_only"] is True and service["tmpfs"] == ["/tmp"], name  # noqa: S108 - in the container
        if name in ONE_SHOT:
            continue
        info = by_module[service["command"][-1]]
        assert service["environment"][info.port_env] == str(info.default_port)
        assert service["ports"] == [f"127.0.0.1:${{{info.port_env}:-{info.default_port}}}:{info.default_port}"]
    for service in compose["services"].values():
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", []))


def test_compose_start_up_waits_on_conditions_only(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert rule == {"condition": expected}, f"{name} -> {dependency}"
    assert set(services["gateway"]["depends_on"]) == {"kafka", "postgres", "migrate", "ledger"}
    assert set(services["migrate"]["depends_on"]) == {"postgres"}
