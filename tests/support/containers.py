"""Helpers of the Docker-only tests (tests/containers): the docker CLI, the image names `make images` builds."""

from __future__ import annotations

import subprocess
from pathlib import Path

from hub_devstack.infra import BUILT_KAFKA_IMAGE, BUILT_POSTGRES_IMAGE

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGES = {
    "HUB_IMAGE": "integration-hub:local",
    "HUB_KAFKA_IMAGE": BUILT_KAFKA_IMAGE,
    "HUB_POSTGRES_IMAGE": BUILT_POSTGRES_IMAGE,
}


def docker(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """The docker CLI (any version: only run/inspect/logs are used), output captured, never raising on failure."""
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout_s, check=False)
