"""Typed errors of the devstack; each message is meant to be shown to a person as is."""

from __future__ import annotations

from hub_common.errors import HubError


class DevstackError(HubError):
    """Infrastructure or the stack could not be provided."""


class ToolMissingError(DevstackError):
    """A program the local mode needs (java, mvn, initdb, ...) is not installed."""

    def __init__(self, tool: str, hint: str) -> None:
        super().__init__(f"{tool} not found: {hint}", tool=tool)
        self.tool = tool


class PortInUseError(DevstackError):
    """A port the stack wants is already taken."""

    def __init__(self, port: int, env_var: str, service: str) -> None:
        super().__init__(
            f"port {port} ({service}) is already in use; free it or choose another with {env_var}=<port>",
            port=port,
            env_var=env_var,
            service=service,
        )
        self.port = port
        self.env_var = env_var


class StartupError(DevstackError):
    """A process did not become ready; the message carries the tail of its log."""

    def __init__(self, what: str, reason: str, log_tail: str = "") -> None:
        message = f"{what} did not start: {reason}"
        if log_tail:
            message += f"\n--- last lines of its log ---\n{log_tail}"
        super().__init__(message, what=what)
        self.what = what
        self.log_tail = log_tail
