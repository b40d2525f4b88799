"""The devstack's own Engine API calls, against a stand-in engine on a unix socket; the orphan rule."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from hub_devstack.docker_containers import BOOT_LABEL, HOST_LABEL, PID_LABEL, is_orphan
from hub_devstack.docker_engine import DockerEngine, image_reference


class _Engine(BaseHTTPRequestHandler):
    images: ClassVar[set[str]] = {"integration-hub/kafka:4.1.1"}
    pulls: ClassVar[dict[str, tuple[int, bytes]]] = {}
    containers: ClassVar[list[dict[str, Any]]] = []
    removed: ClassVar[list[str]] = []
    seen: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:  # a client done with a 204 may have closed already: writing nothing then is a broken pipe
            self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.seen.append(f"GET {unquote(url.path)}")
        if url.path == "/_ping":
            self._send(200, b"OK")
        elif url.path.startswith("/images/") and url.path.endswith("/json"):
            name = unquote(url.path[len("/images/") : -len("/json")])
            self._send(200 if name in self.images else 404, b'{"message": "No such image"}')
        elif url.path == "/containers/json":
            wanted = json.loads(parse_qs(url.query)["filters"][0])["label"][0]
            found = [c for c in self.containers if wanted in c["Labels"]]
            self._send(200, json.dumps(found).encode())
        else:
            self._send(404)

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        ref = parse_qs(url.query)["fromImage"][0]
        self.seen.append(f"POST pull {ref}")
        status, body = self.pulls.get(ref, (404, b'{"message": "pull access denied"}'))
        if status == 200 and b'"error"' not in body:
            self.images.add(ref)
        self._send(status, body)

    def do_DELETE(self) -> None:
        container_id = urlsplit(self.path).path.rsplit("/", 1)[-1]
        self.removed.append(container_id)
        self._send(204)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[DockerEngine]:
    path = tmp_path / "docker.sock"
    _Engine.seen.clear()
    _Engine.removed.clear()
    with _Server(str(path), _Engine) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield DockerEngine(f"unix://{path}")
        finally:
            server.shutdown()
            thread.join(timeout=5)


def test_answers_only_when_something_speaks_the_api(engine: DockerEngine, tmp_path: Path) -> None:
    assert engine.answers()
    assert not DockerEngine(f"unix://{tmp_path / 'absent.sock'}").answers()
    silent = tmp_path / "silent.sock"
    with socketserver.UnixStreamServer(str(silent), BaseHTTPRequestHandler, bind_and_activate=True):
        pass  # bound, then closed: the file exists but nothing listens
    assert not DockerEngine(f"unix://{silent}").answers()
    assert not DockerEngine("ssh://somewhere").answers()


def test_has_image_quotes_the_reference(engine: DockerEngine) -> None:
    assert engine.has_image("integration-hub/kafka:4.1.1")
    assert not engine.has_image("apache/kafka:4.1.1")
    assert "GET /images/integration-hub/kafka:4.1.1/json" in _Engine.seen


def test_pull_reports_the_engines_reason_in_one_line(engine: DockerEngine) -> None:
    _Engine.pulls.update(
        {
            "ok/image:1": (200, b'{"status":"Pulling"}\n{"status":"Downloaded newer image"}\n'),
            "midway/image:1": (200, b'{"status":"Pulling"}\n{"error":"unexpected EOF\\nwhile reading"}\n'),
        }
    )
    assert engine.pull("ok/image:1") is None
    assert engine.has_image("ok/image:1")
    assert engine.pull("midway/image:1") == "unexpected EOF while reading"
    assert engine.pull("denied/image:1") == "pull access denied"
    assert "POST pull plain:latest" not in _Engine.seen
    engine.pull("plain")
    assert "POST pull plain:latest" in _Engine.seen


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("postgres", "postgres:latest"),
        ("postgres:15", "postgres:15"),
        ("localhost:5000/kafka", "localhost:5000/kafka:latest"),
        ("python@sha256:abc", "python@sha256:abc"),
    ],
)
def test_image_reference_always_names_one_tag_or_digest(ref: str, full: str) -> None:
    assert image_reference(ref) == full


def test_containers_by_label_and_removal(engine: DockerEngine) -> None:
    _Engine.containers[:] = [{"Id": "a" * 64, "Labels": {"mine": "1"}}, {"Id": "b" * 64, "Labels": {}}]
    assert [c["Id"] for c in engine.containers("mine")] == ["a" * 64]
    engine.remove_container("a" * 64)
    assert _Engine.removed == ["a" * 64]


def _labels(host: str = "box", boot: str = "boot-1", pid: str = "42") -> dict[str, str]:
    return {HOST_LABEL: host, BOOT_LABEL: boot, PID_LABEL: pid}


@pytest.mark.parametrize(
    ("labels", "alive", "orphan"),
    [
        (_labels(), True, False),
        (_labels(), False, True),
        (_labels(boot="boot-0"), True, True),  # started before the last boot: its owner is gone
        (_labels(host="other"), False, False),  # another host's container on a shared engine: not ours to judge
        (_labels(pid="not-a-pid"), False, False),
    ],
)
def test_a_container_is_orphaned_when_its_owner_process_is_gone(
    labels: dict[str, str], alive: bool, orphan: bool
) -> None:
    assert is_orphan(labels, host="box", boot="boot-1", alive=lambda pid: alive and pid == 42) is orphan
