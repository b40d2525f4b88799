"""The Hub image: the service packages at their locked versions and nothing else, a non-root user, a health
check, and every service started as the README says (`docker run ... python -m <service>`), read-only."""

from __future__ import annotations

import json
import re
import secrets
import time
import tomllib
import uuid

import pytest

from hub_common.services import SERVICES
from support.containers import ROOT, docker

# What must not reach production: the test infrastructure and the development tools.
DEV_ONLY = {"hub-devstack", "testcontainers", "docker", "pytest", "mypy", "ruff", "schemathesis", "pyinstrument"}
# Restrictions a hardened runtime (Kubernetes' restricted profile) applies; every service must run under them.
HARDENED = ("--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges")  # noqa: S108


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installed(image: str) -> dict[str, str]:
    script = (
        "import importlib.metadata as m, json; "
        "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))"
    )
    ran = docker("run", "--rm", *HARDENED, image, "python", "-c", script)
    assert ran.returncode == 0, ran.stderr
    return {_normalise(name): version for name, version in json.loads(ran.stdout).items()}


def test_the_image_holds_the_locked_service_packages_and_no_dev_tooling(images: dict[str, str]) -> None:
    installed = _installed(images["HUB_IMAGE"])
    locked = {p["name"]: p["version"] for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    assert not DEV_ONLY & installed.keys(), f"dev-only packages in the runtime image: {DEV_ONLY & installed.keys()}"
    assert {"hub-common", "hub-gateway", "hub-ledger", "hub-dispatcher", "hub-reconciler", "hubctl"} <= set(installed)
    drifted = {name: (version, locked.get(name)) for name, version in installed.items() if locked.get(name) != version}
    assert not drifted, f"installed versions that are not uv.lock's (installed, locked): {drifted}"


def test_it_runs_as_a_fixed_non_root_user_with_a_healthcheck(images: dict[str, str]) -> None:
    inspected = docker("image", "inspect", images["HUB_IMAGE"])
    config = json.loads(inspected.stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "hub_common.healthcheck"]
    ran = docker("run", "--rm", *HARDENED, images["HUB_IMAGE"], "id", "-u")
    assert ran.stdout.strip() == "10001"


def _health(container: str) -> str:
    return docker("inspect", "-f", "{{.State.Health.Status}}", container).stdout.strip()


@pytest.mark.parametrize("module", ["mock_operator", "mock_rgs"])
def test_a_service_without_dependencies_becomes_healthy_read_only(images: dict[str, str], module: str) -> None:
    info = next(s for s in SERVICES if s.module == module)
    name = f"hub-image-test-{uuid.uuid4().hex[:8]}"
    secret = secrets.token_urlsafe(32)  # the services refuse short or placeholder secrets outside HUB_DEV_MODE
    env = [
        "-e", f"{info.env_prefix}HOST=0.0.0.0",
        "-e", f"MOCK_OPERATOR_SECRET={secret}", "-e", f'MOCK_RGS_SECRETS=["{secret}"]',
    ]  # fmt: skip
    started = docker("run", "-d", "--name", name, *HARDENED, *env, images["HUB_IMAGE"], "python", "-m", info.module)
    assert started.returncode == 0, started.stderr
    try:
        deadline = time.monotonic() + 90
        while _health(name) != "healthy" and time.monotonic() < deadline:
            assert docker("inspect", "-f", "{{.State.Running}}", name).stdout.strip() == "true", docker("logs", name)
            time.sleep(1)
        assert _health(name) == "healthy", docker("logs", name).stdout[-2000:]
    finally:
        docker("rm", "-f", name)


def test_a_service_with_bad_settings_exits_2_naming_the_setting(images: dict[str, str]) -> None:
    ran = docker(
        "run", "--rm", *HARDENED, "-e", "LEDGER_PORT=not-a-port", images["HUB_IMAGE"], "python", "-m", "hub_ledger"
    )
    assert ran.returncode == 2
    assert "invalid setting port" in ran.stderr
