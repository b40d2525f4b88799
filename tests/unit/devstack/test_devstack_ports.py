from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub_devstack.errors import PortInUseError, StartupError
from hub_devstack.procs import free_port, port_is_free, start_on_free_ports
from hub_devstack.stack_config import SERVICES, StackConfig, check_ports, ports_from_env


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_port_is_free_tells_a_listening_port_from_a_free_one(listening: int) -> None:
    assert not port_is_free(listening)
    assert port_is_free(free_port())


def test_a_taken_port_names_the_port_the_service_and_the_overriding_variable(listening: int, tmp_path: Path) -> None:
    ports = {spec.name: free_port() for spec in SERVICES}
    ports["ledger"] = listening
    with pytest.raises(PortInUseError) as info:
        check_ports(StackConfig(state_dir=tmp_path, ports=ports))
    assert info.value.port == listening
    assert info.value.env_var == "LEDGER_PORT"
    assert f"port {listening} (ledger) is already in use" in info.value.message
    assert "LEDGER_PORT=<port>" in info.value.message


def test_free_ports_pass_the_check(tmp_path: Path) -> None:
    check_ports(StackConfig(state_dir=tmp_path, ports={spec.name: free_port() for spec in SERVICES}))


def test_ports_default_to_the_documented_ones_and_follow_each_services_port_variable() -> None:
    assert ports_from_env({}) == {
        "mock-operator": 3001,
        "mock-rgs": 3002,
        "ledger": 3010,
        "webhook-dispatcher": 3011,
        "reconciler": 3012,
        "gateway": 3000,
    }
    ports = ports_from_env({"GATEWAY_PORT": "4000", "DISPATCHER_PORT": "4011", "MOCK_RGS_PORT": " "})
    assert ports["gateway"] == 4000
    assert ports["webhook-dispatcher"] == 4011
    assert ports["mock-rgs"] == 3002


class _KernelRepeatingAPort:
    """A socket whose bind(0) gets ports from a script, as the kernel may reuse one just released."""

    script: list[int] = []

    def __init__(self, *_: object) -> None:
        self._port = 0

    def __enter__(self) -> _KernelRepeatingAPort:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def bind(self, _: tuple[str, int]) -> None:
        self._port = self.script.pop(0)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self._port)


def test_free_port_never_hands_out_a_port_twice_even_when_the_kernel_repeats_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A broker's two listeners, given ports back to back, once got the same number and the broker would not start.
    first = free_port()
    monkeypatch.setattr(_KernelRepeatingAPort, "script", [first, first, 1, 1, 2])
    monkeypatch.setattr("hub_devstack.procs.socket.socket", _KernelRepeatingAPort)
    assert [free_port(), free_port()] == [1, 2]


@pytest.mark.parametrize(
    ("log_tail", "starts"),
    [
        pytest.param("java.lang.OutOfMemoryError: Java heap space", 1, id="another-reason-is-reported-at-once"),
        pytest.param("BindException: Address already in use", 3, id="a-port-lost-thrice-is-reported"),
    ],
)
def test_a_server_is_started_again_only_when_it_lost_its_port(log_tail: str, starts: int) -> None:
    calls: list[int] = []

    def start() -> str:
        calls.append(1)
        raise StartupError("Kafka broker", "exit 1", log_tail)

    with pytest.raises(StartupError) as info:
        start_on_free_ports(start, ports_chosen_here=True)
    assert info.value.log_tail == log_tail
    assert len(calls) == starts
