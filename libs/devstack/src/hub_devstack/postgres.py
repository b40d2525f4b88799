"""PLACEHOLDER (infra helper replaces): PostgreSQL from DATABASE_URL only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit


@contextmanager
def provide_postgres() -> Iterator[str]:
    yield os.environ["DATABASE_URL"]


def database_url_for(admin_url: str, database: str) -> str:
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path="/" + database))
