"""The one error a command raises on purpose: it ends hubctl with one plain line and a non-zero exit code."""

from __future__ import annotations

from hub_common.errors import HubError


class HubctlError(HubError):
    """A refusal or a failure the SRE can act on (`hubctl: <message>` on stderr, exit `exit_code`)."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message, exit_code=exit_code)
        self.exit_code = exit_code
