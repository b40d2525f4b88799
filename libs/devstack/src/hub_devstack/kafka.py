"""PLACEHOLDER (infra helper replaces): Kafka from KAFKA_BOOTSTRAP_SERVERS only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def provide_kafka() -> Iterator[str]:
    yield os.environ["KAFKA_BOOTSTRAP_SERVERS"]
