"""Is a Docker engine reachable? Constructing any testcontainers container without one raises, so ask first.

The probe speaks to the engine's `/_ping` itself: docker-py, when the socket file exists but nothing answers,
fails inside its constructor and leaks the socket (a ResourceWarning, an error under `filterwarnings = error`).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

DEFAULT_HOST = "unix:///var/run/docker.sock"
PING = b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n"


def _ping(family: socket.AddressFamily, address: str | tuple[str, int]) -> bool:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(address)
            sock.sendall(PING)
            return sock.recv(64).split(b" ", 2)[1:2] == [b"200"]
    except OSError:
        return False


def docker_available() -> bool:
    host = os.environ.get("DOCKER_HOST", DEFAULT_HOST)
    parts = urlsplit(host)
    if parts.scheme == "unix":
        return os.path.exists(parts.path) and _ping(socket.AF_UNIX, parts.path)
    if parts.scheme in ("tcp", "http") and parts.hostname:
        # TLS engines (DOCKER_TLS_VERIFY) answer the plain ping with an error: treated as "no Docker".
        return _ping(socket.AF_INET, (parts.hostname, parts.port or 2375))
    return False
