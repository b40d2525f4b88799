"""A bounded schemathesis run against a live gateway, every request signed over the exact bytes it sends.

schemathesis calls the API with `requests` (synchronous): run `fuzz` in a thread while the gateway serves on
the event loop. Signing happens in a `requests` auth hook, which sees the prepared request: the final method,
path with query and body bytes, after schemathesis has serialised the generated case.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from pydantic import SecretStr
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.generation.hypothesis.examples import generate_one
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub_common.signing import request_headers
from hub_gateway.validation import IDEMPOTENCY_HEADER

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class SignedAuth(requests.auth.AuthBase):
    """X-Client-Id, X-Timestamp and X-Signature over `{timestamp}.{METHOD}.{path_with_query}.{raw_body}`."""

    def __init__(self, client_id: str, secret: SecretStr) -> None:
        self._client_id = client_id
        self._secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        raw = body.encode() if isinstance(body, str) else body
        # schemathesis always sends a serialised body (never a stream): the signature covers these bytes.
        assert isinstance(raw, bytes)
        assert request.method is not None
        request.headers.update(
            {"X-Client-Id": self._client_id, **request_headers(self._secret, request.method, request.path_url, raw)}
        )
        return request


@dataclass
class FuzzReport:
    calls: int = 0
    statuses: dict[str, dict[int, int]] = field(default_factory=dict)

    def record(self, operation: str, status: int) -> None:
        self.calls += 1
        counts = self.statuses.setdefault(operation, {})
        counts[status] = counts.get(status, 0) + 1


def fuzz(
    document: dict[str, Any],
    base_url: str,
    auth: SignedAuth,
    *,
    max_examples: int,
    time_budget_s: float,
    modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE),
) -> FuzzReport:
    """Run every operation in every mode; raises schemathesis' failure (5xx, schema violation) on the first.

    In the positive mode the document's own examples (request bodies, parameter examples) are sent first, every
    run and whatever the time budget: they are what a reader of the document would try, and they reach the
    handlers past validation (an admission, a lookup, a balance), which random generation only sometimes does.
    """
    schema = schemathesis.openapi.from_dict(document)
    report = FuzzReport()
    stop_at = time.monotonic() + time_budget_s
    with requests.Session() as session:
        for result in schema.get_all_operations():
            if isinstance(result, Err):
                raise result.err()
            operation = result.ok()
            for mode in modes:
                _run(
                    operation,
                    mode,
                    report=report,
                    session=session,
                    base_url=base_url,
                    auth=auth,
                    max_examples=max_examples,
                    stop_at=stop_at,
                )
    return report


def _run(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    *,
    report: FuzzReport,
    session: requests.Session,
    base_url: str,
    auth: SignedAuth,
    max_examples: int,
    stop_at: float,
) -> None:
    def send(case: schemathesis.Case[Any]) -> None:
        response = case.call_and_validate(base_url=base_url, session=session, auth=auth, checks=CHECKS)
        report.record(operation.label, response.status_code)

    if mode is GenerationMode.POSITIVE:
        for number, strategy in enumerate(operation.get_strategies_from_examples()):
            case = generate_one(strategy)
            # The document gives no key example, so every example would get the same generated one, and all but
            # the first admission would be a key reused with another body: each example is its own request.
            if IDEMPOTENCY_HEADER in case.headers:
                case.headers[IDEMPOTENCY_HEADER] = f"document-example-{number}"
            send(case)

    # No shrinking and no example database: a failure is reported as generated, and runs stay bounded.
    @hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    def call(case: schemathesis.Case[Any]) -> None:
        if time.monotonic() > stop_at:
            return
        send(case)

    call()
