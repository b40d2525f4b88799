"""One error hierarchy for every Hub service.

Errors carry data, never HTTP responses: each service has one module that maps them to its transport.
`FatalError` is the distinct branch for "stop the service" (corrupt state, bad configuration).
"""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base of every error the Hub raises on purpose."""

    retryable: bool = False

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class FatalError(HubError):
    """The service cannot go on; the lifecycle stops it (non-zero exit) instead of retrying."""


class ConfigurationError(FatalError):
    """Settings are invalid or inconsistent."""


class InfrastructureError(HubError):
    """A dependency (Kafka, PostgreSQL, an HTTP peer) is unreachable or failing; retryable."""

    retryable = True


class KafkaUnavailableError(InfrastructureError):
    """The broker did not accept or serve a request in time."""


class DatabaseUnavailableError(InfrastructureError):
    """PostgreSQL did not answer or refused the connection."""


class RecordDecodeError(HubError):
    """A Kafka record could not be parsed into our envelope or its payload schema."""

    def __init__(self, message: str, *, topic: str, partition: int, offset: int) -> None:
        super().__init__(message, topic=topic, partition=partition, offset=offset)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class SignatureError(HubError):
    """A request or webhook signature did not verify. `code` is the contract's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.code = code
