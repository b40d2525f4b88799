"""Process, port and log helpers shared by the local Kafka, the local PostgreSQL and the stack launcher."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from hub_devstack.errors import StartupError, ToolMissingError

LOOPBACK = "127.0.0.1"


# Ports this process has handed out. The kernel may return a just-released ephemeral port from the next
# bind(0), so two calls made before either port is bound (a broker's client and controller listeners) can
# otherwise get the same number.
_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_port(host: str = LOOPBACK) -> int:
    """A port the OS considers free right now and that this process has not handed out before.

    Another process may still take it before we bind.
    """
    with _handed_out_lock:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            if port not in _handed_out:
                _handed_out.add(port)
                return port


def start_on_free_ports(start: Callable[[], str], *, ports_chosen_here: bool, attempts: int = 3) -> str:
    """Run `start`, again when its server lost a port we chose to another process before it could bind it.

    Between `free_port` and the bind (seconds for a JVM) any connection on the machine may get that port as its
    ephemeral source port; ports a person chose are theirs to change, so that failure is reported at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except StartupError as error:
            if not ports_chosen_here or attempt == attempts or "Address already in use" not in error.log_tail:
                raise
    raise AssertionError("unreachable")


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on `host:port` and we could bind it ourselves."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex((host, port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as the services use it: a socket in TIME_WAIT does not count as taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ToolMissingError(name, hint)
    return path


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_for_log_line(proc: subprocess.Popen[bytes], log: Path, needle: str, *, what: str, timeout_s: float) -> None:
    """Poll `log` until it contains `needle`; fail early (with the log tail) if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if needle in log.read_text(errors="replace"):
                return
        code = proc.poll()
        if code is not None:
            raise StartupError(what, f"process exited with code {code}", log_tail(log))
        time.sleep(0.2)
    raise StartupError(what, f"no {needle!r} in its log after {timeout_s:.0f} s", log_tail(log))


def wait_until(check: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.5) -> bool:
    """Bounded polling: True as soon as `check()` is, False once `timeout_s` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


def terminate_child(proc: subprocess.Popen[bytes], *, grace_s: float = 10.0) -> int | None:
    """SIGTERM, wait up to `grace_s`, then SIGKILL. Returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        return proc.wait(timeout=10)
