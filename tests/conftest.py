"""Unit tests must not reach the network: a connect to anything but loopback fails the test.

Tests under tests/integration and tests/containers are marked `integration` automatically and may use the real
broker and database (tests/containers: the images and the compose stack; `make test-docker` runs them).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from hub_common.secret_policy import DEV_MODE_ENV

# Tests run services with generated, loopback-only settings (http webhook receivers, short demo secrets): the
# development switch of the secret policy, exactly as `make up` sets it. Tests of the policy itself unset it.
os.environ.setdefault(DEV_MODE_ENV, "1")


@pytest.fixture(autouse=True)
def _no_external_network(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("integration") is not None:
        yield
        return
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if self.family != socket.AF_UNIX and host not in ("127.0.0.1", "::1", "localhost"):
            raise RuntimeError(f"unit tests may not reach the network ({host!r}); mark the test `integration`")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path) or "/tests/containers/" in str(item.path):
            item.add_marker(pytest.mark.integration)


_integration = {"ran": 0, "skipped": 0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "integration" not in report.keywords:
        return
    if report.when == "call":
        _integration["ran"] += 1
    if report.skipped:
        _integration["skipped"] += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    # CI sets HUB_REQUIRE_INTEGRATION: a run where the broker/database tests did not all execute is a failure.
    if os.environ.get("HUB_REQUIRE_INTEGRATION") != "1" or session.config.option.collectonly:
        return
    if _integration["ran"] == 0 or _integration["skipped"]:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"HUB_REQUIRE_INTEGRATION: {_integration['ran']} integration tests ran, "
                f"{_integration['skipped']} skipped; failing the run",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
