from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_devstack.errors import ToolMissingError
from hub_devstack.procs import free_port
from hub_devstack.stack_config import SERVICES, StackConfig
from hub_devstack.up import main


@pytest.fixture
def restore_signals() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_a_taken_port_exits_2_with_one_line_naming_port_and_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_signals: None
) -> None:
    for spec in SERVICES:
        monkeypatch.setenv(spec.port_env, str(free_port()))
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv("GATEWAY_PORT", str(port))
        assert main(["--state-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"port {port} (gateway)" in err
    assert "GATEWAY_PORT" in err


@pytest.mark.parametrize(("argv", "secure_env", "secure"), [([], "", False), (["--secure"], "", True), ([], "1", True)])
@pytest.mark.usefixtures("restore_signals")
def test_one_flag_runs_the_stack_secured(
    argv: list[str], secure_env: str, secure: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[StackConfig] = []

    def fake_run_stack(config: StackConfig) -> Iterator[None]:
        seen.append(config)
        raise ToolMissingError("java", "install a JDK")

    monkeypatch.setenv("HUB_SECURE", secure_env)
    monkeypatch.setattr("hub_devstack.up.run_stack", fake_run_stack)
    assert main(["--state-dir", str(tmp_path), *argv]) == 2
    assert seen[0].secure_kafka is secure
