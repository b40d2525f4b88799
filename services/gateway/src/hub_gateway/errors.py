"""The gateway's domain errors. They carry data only; `http_errors` is the one place that maps them to HTTP."""

from __future__ import annotations

from dataclasses import dataclass

from hub_common.errors import HubError


@dataclass(frozen=True)
class FieldProblem:
    field: str
    message: str


class InvalidRequestError(HubError):
    """The request cannot be understood: malformed JSON, wrong or missing fields, bad headers."""

    def __init__(self, message: str, problems: list[FieldProblem] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])


class PayloadTooLargeError(InvalidRequestError):
    """A 400 like any other invalid request (the contract knows no 413), naming the body as the bad field."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"request body exceeds {limit} bytes", [FieldProblem("body", f"must be at most {limit} bytes")]
        )
        self.limit = limit


class UnsupportedCurrencyError(HubError):
    def __init__(self, currency: str, supported: list[str]) -> None:
        super().__init__(f"currency {currency} is not supported (supported: {', '.join(supported)})")
        self.currency = currency


class IdempotencyKeyReusedError(HubError):
    def __init__(self) -> None:
        super().__init__("this Idempotency-Key was already used with a different request body")


class DuplicateRefIdError(HubError):
    def __init__(self, ref_id: str) -> None:
        super().__init__(f"refId {ref_id!r} was already used with a different request body")
        self.ref_id = ref_id


class RequestInProgressError(HubError):
    """Another request with the same key or refId is still being admitted."""

    retryable = True

    def __init__(self, retry_after_s: int) -> None:
        super().__init__("a request with this Idempotency-Key or refId is still being admitted")
        self.retry_after_s = retry_after_s


class RateLimitedError(HubError):
    """Refused by admission control (`admission_control`): `reason` names the limit, for metrics and logs."""

    retryable = True

    def __init__(self, message: str, retry_after_s: int, *, reason: str) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason = reason


class TransactionNotFoundError(HubError):
    def __init__(self, ref_id: str) -> None:
        super().__init__(f"no transaction with refId {ref_id!r}")
        self.ref_id = ref_id
