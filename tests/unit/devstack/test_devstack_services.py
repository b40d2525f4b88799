"""The launcher's process handling, with stand-in services on loopback ports (no Kafka, no PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub_devstack.errors import StartupError
from hub_devstack.procs import free_port
from hub_devstack.stack import run_services
from hub_devstack.stack_config import ServiceSpec, StackConfig

HERE = Path(__file__).parent


def _config(
    tmp_path: Path, behaviours: dict[str, str], *, ready_timeout_s: float, stop_grace_s: float = 10.0
) -> tuple[StackConfig, dict[str, dict[str, str]]]:
    specs = tuple(
        ServiceSpec(name, "fake_service", f"FAKE_{i}_", 0, args=(f"FAKE_{i}_PORT", behaviour))
        for i, (name, behaviour) in enumerate(behaviours.items())
    )
    ports = {spec.name: free_port() for spec in specs}
    config = StackConfig(
        state_dir=tmp_path, ports=ports, services=specs, ready_timeout_s=ready_timeout_s, stop_grace_s=stop_grace_s
    )
    envs = {
        spec.name: {"PYTHONPATH": str(HERE), spec.port_env: str(ports[spec.name]), "KAFKA_BOOTSTRAP_SERVERS": "k:1"}
        for spec in specs
    }
    return config, envs


def test_all_ready_then_all_stopped_with_logs_per_service(tmp_path: Path) -> None:
    config, envs = _config(tmp_path, {"alpha": "ok", "beta": "ok"}, ready_timeout_s=30)
    with run_services(config, envs) as services:
        assert [s.spec.name for s in services] == ["alpha", "beta"]
        assert all(s.proc.poll() is None for s in services)
    assert all(s.proc.returncode is not None for s in services)
    assert "KAFKA_BOOTSTRAP_SERVERS=k:1" in (tmp_path / "logs" / "alpha.log").read_text()
    assert (tmp_path / "logs" / "beta.log").is_file()


def test_a_crashing_service_is_named_with_its_log_tail_and_the_others_are_stopped(tmp_path: Path) -> None:
    config, envs = _config(tmp_path, {"alpha": "ok", "ledger": "crash"}, ready_timeout_s=30)
    started = []
    with pytest.raises(StartupError) as info, run_services(config, envs) as services:
        started = services  # pragma: no cover - never reached
    message = info.value.message
    assert "service ledger" in message
    assert "exited with code 3" in message
    assert "cannot load settings" in message
    assert started == []


def test_a_service_never_ready_times_out_naming_its_ready_url(tmp_path: Path) -> None:
    config, envs = _config(tmp_path, {"gateway": "never-ready"}, ready_timeout_s=1.5)
    with pytest.raises(StartupError) as info, run_services(config, envs):
        pass  # pragma: no cover
    assert "service gateway" in info.value.message
    assert f"http://127.0.0.1:{config.ports['gateway']}/ready" in info.value.message
    assert "fake service listening" in info.value.log_tail


def test_a_service_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    config, envs = _config(tmp_path, {"stubborn": "stubborn"}, ready_timeout_s=30, stop_grace_s=0.5)
    with run_services(config, envs) as services:
        proc = services[0].proc
    assert proc.returncode == -9
