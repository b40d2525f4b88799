"""Docker-only tests: the images `make images` builds and the compose stack made of them (`make test-docker`).

They need a Docker engine (`DOCKER_HOST`) and the images; without either they fail naming what to do, they are
never skipped. Containers publish ports on free loopback ports only.
"""

from __future__ import annotations

import os

import pytest

from hub_devstack.docker_engine import DockerEngine
from support.containers import DEFAULT_IMAGES


@pytest.fixture(scope="session")
def engine() -> DockerEngine:
    found = DockerEngine.from_env()
    if not found.answers():
        pytest.fail(f"no Docker engine answers at {found.host}: start one (or set DOCKER_HOST), then `make images`")
    return found


@pytest.fixture(scope="session")
def images(engine: DockerEngine) -> dict[str, str]:
    """The image names in use (`HUB_IMAGE`, `HUB_KAFKA_IMAGE`, `HUB_POSTGRES_IMAGE`), all present."""
    chosen = {var: os.environ.get(var) or default for var, default in DEFAULT_IMAGES.items()}
    missing = [f"{var}={ref}" for var, ref in chosen.items() if not engine.has_image(ref)]
    if missing:
        pytest.fail(f"images missing at {engine.host}: {', '.join(missing)}; build them with `make images`")
    return chosen
