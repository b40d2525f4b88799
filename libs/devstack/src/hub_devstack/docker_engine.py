"""The few Docker Engine API calls the devstack makes itself: is an engine there, has it an image, can it pull one,
which containers carry a label, remove one.

Spoken over the engine's socket with the standard library rather than docker-py: docker-py, when the socket file
exists but nothing answers, fails inside its constructor and leaks the socket (a ResourceWarning, an error under
`filterwarnings = error`), and these probes must be cheap and must never raise for "no Docker".
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_HOST = "unix:///var/run/docker.sock"
PROBE_TIMEOUT_S = 3.0
PULL_TIMEOUT_S = 900.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("docker", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes

    def message(self) -> str:
        """The engine's error message (`{"message": ...}`), or the start of the body."""
        try:
            return str(json.loads(self.body)["message"])
        except (ValueError, KeyError, TypeError):
            return self.body[:200].decode(errors="replace").strip() or f"HTTP {self.status}"


def image_reference(ref: str) -> str:
    """`ref` with a tag when it has neither tag nor digest (the pull API would fetch every tag otherwise)."""
    last = ref.rsplit("/", 1)[-1]
    return ref if "@" in ref or ":" in last else f"{ref}:latest"


class DockerEngine:
    """One engine, named as Docker clients name it (`DOCKER_HOST`, default the local socket)."""

    def __init__(self, host: str = DEFAULT_HOST) -> None:
        self.host = host

    @classmethod
    def from_env(cls) -> DockerEngine:
        return cls(os.environ.get("DOCKER_HOST") or DEFAULT_HOST)

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        parts = urlsplit(self.host)
        if parts.scheme == "unix":
            return _UnixConnection(parts.path, timeout)
        if parts.scheme in ("tcp", "http") and parts.hostname:
            # TLS engines (DOCKER_TLS_VERIFY) answer plain HTTP with an error: treated as "no Docker".
            return http.client.HTTPConnection(parts.hostname, parts.port or 2375, timeout=timeout)
        raise OSError(f"unsupported DOCKER_HOST {self.host!r}")

    def request(self, method: str, path: str, *, timeout: float = PROBE_TIMEOUT_S) -> Reply:
        """Raises OSError (or http.client.HTTPException) when the engine cannot be reached."""
        conn = self._connection(timeout)
        try:
            conn.request(method, path, headers={"Host": "docker"})
            response = conn.getresponse()
            return Reply(response.status, response.read())
        finally:
            conn.close()

    def answers(self) -> bool:
        parts = urlsplit(self.host)
        if parts.scheme == "unix" and not os.path.exists(parts.path):
            return False
        try:
            return self.request("GET", "/_ping").status == 200
        except (OSError, http.client.HTTPException):
            return False

    def has_image(self, ref: str) -> bool:
        try:
            return self.request("GET", f"/images/{quote(ref, safe='')}/json").status == 200
        except (OSError, http.client.HTTPException):
            return False

    def pull(self, ref: str, *, timeout_s: float = PULL_TIMEOUT_S) -> str | None:
        """Pull `ref`; None when it is now present, else the engine's reason in one line."""
        query = urlencode({"fromImage": image_reference(ref)})
        try:
            reply = self.request("POST", f"/images/create?{query}", timeout=timeout_s)
        except (OSError, http.client.HTTPException) as exc:
            return f"pull failed: {exc}"
        if reply.status != 200:
            return _one_line(reply.message())
        # A 200 streams progress as JSON lines; a failure part-way is an {"error": ...} line.
        for line in reply.body.splitlines():
            try:
                event: Any = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("error"):
                return _one_line(str(event["error"]))
        return None if self.has_image(ref) else "the engine reported success but has no such image"

    def containers(self, label: str) -> list[dict[str, Any]]:
        """Every container (running or not) carrying `label`."""
        query = urlencode({"all": "1", "filters": json.dumps({"label": [label]})})
        reply = self.request("GET", f"/containers/json?{query}")
        if reply.status != 200:
            raise OSError(f"listing containers failed: {reply.message()}")
        found: list[dict[str, Any]] = json.loads(reply.body)
        return found

    def remove_container(self, container_id: str) -> None:
        """Force-remove a container and its anonymous volumes; already gone counts as removed."""
        reply = self.request("DELETE", f"/containers/{quote(container_id, safe='')}?force=1&v=1", timeout=30)
        if reply.status not in (204, 404):
            raise OSError(f"removing container {container_id[:12]} failed: {reply.message()}")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]
