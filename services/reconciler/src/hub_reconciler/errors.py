"""Domain errors of the reconciler."""

from __future__ import annotations

from hub_common.errors import HubError, InfrastructureError


class OperatorFeedError(InfrastructureError):
    """The operator's report feed did not answer usefully (5xx, 429 past our attempts, network, bad body)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.status = status


class InvalidRangeError(HubError):
    """A date-range reconciliation was asked for `to` before `from`."""
