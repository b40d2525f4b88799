"""The image's HEALTHCHECK: which service a container runs, which port it probes, what counts as healthy."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hub_common.healthcheck import main, pid1_command, probe, ready_url
from hub_common.services import SERVICES, service_in_command

BY_NAME = {s.name: s for s in SERVICES}


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["python", "-m", "hub_gateway"], "gateway"),
        (["/opt/venv/bin/python3", "-u", "-m", "hub_dispatcher"], "webhook-dispatcher"),
        (["/opt/venv/bin/python", "/opt/venv/bin/hub-ledger"], "ledger"),
        (["/sbin/docker-init", "--", "python", "-m", "mock_rgs"], "mock-rgs"),
        (["mock-operator"], "mock-operator"),
    ],
)
def test_the_service_is_found_in_its_command(argv: list[str], name: str) -> None:
    assert service_in_command(argv) == BY_NAME[name]


@pytest.mark.parametrize("argv", [["hub-migrate"], ["python", "-m", "hubctl", "health"], ["python", "-m"], []])
def test_commands_that_serve_nothing_have_no_service(argv: list[str]) -> None:
    assert service_in_command(argv) is None


def test_every_service_has_its_own_port_and_prefix() -> None:
    assert len({s.default_port for s in SERVICES}) == len(SERVICES)
    assert len({s.env_prefix for s in SERVICES}) == len(SERVICES)


def test_the_port_comes_from_the_services_own_variable() -> None:
    gateway = BY_NAME["gateway"]
    assert ready_url(gateway, {}) == "http://127.0.0.1:3000/ready"
    assert ready_url(gateway, {"GATEWAY_PORT": "8080", "LEDGER_PORT": "1"}) == "http://127.0.0.1:8080/ready"


def test_pid1_command_splits_proc_cmdline(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"python\0-m\0hub_ledger\0")
    assert pid1_command(cmdline) == ["python", "-m", "hub_ledger"]
    assert pid1_command(tmp_path / "missing") == []


class _Ready(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status = 200 if self.path == "/ready" else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def server() -> Iterator[str]:
    with ThreadingHTTPServer(("127.0.0.1", 0), _Ready) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()
            thread.join(timeout=5)


def test_healthy_only_on_200(server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert probe(f"{server}/ready") is None
    assert probe(f"{server}/starting") == f"GET {server}/starting answered 503"
    assert main([f"{server}/ready"]) == 0
    assert main([f"{server}/starting"]) == 1
    assert capsys.readouterr().out == f"healthcheck: GET {server}/starting answered 503\n"


def test_nothing_listening_is_unhealthy() -> None:
    problem = probe("http://127.0.0.1:9/ready", timeout_s=1)
    assert problem is not None and problem.startswith("GET http://127.0.0.1:9/ready failed")
