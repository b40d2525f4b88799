"""Where the devstack finds the repository's infra files and keeps its download cache."""

from __future__ import annotations

import os
from pathlib import Path

from hub_devstack.errors import DevstackError

KAFKA_VERSION = "4.1.1"


def find_infra_dir(*starts: Path) -> Path:
    """The repository's `infra/` directory: `HUB_INFRA_DIR`, else the first ancestor of `starts` holding one."""
    explicit = os.environ.get("HUB_INFRA_DIR")
    if explicit:
        return Path(explicit)
    candidates = starts or (Path(__file__).resolve().parent, Path.cwd())
    for start in candidates:
        for folder in (start, *start.parents):
            if (folder / "infra" / "kafka" / "pom.xml").is_file():
                return folder / "infra"
    raise DevstackError("cannot find infra/kafka/pom.xml; run from the repository or set HUB_INFRA_DIR")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "integration-hub"


def kafka_cache_dir() -> Path:
    return cache_root() / f"kafka-{KAFKA_VERSION}"
