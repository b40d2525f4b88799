"""HTTP client of the operator wallet API (contract section 3): signed, time-limited, classified.

Every answer becomes a result or one of the typed errors in `hub_common.operator.errors`; aiohttp exceptions
never leave this module. The caller spends the shared `Budget` before each call: this client does not, so
that a caller can check the breaker (`retry_in`) before paying for a call that would not be sent.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
from prometheus_client import Counter, Histogram
from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel
from yarl import URL

from hub_common.breaker import CircuitBreaker
from hub_common.operator.errors import (
    CircuitOpenError,
    OperatorRateLimited,
    OperatorRejected,
    OperatorTechnicalError,
)
from hub_common.operator.settings import OperatorSettings
from hub_common.schemas import ErrorCode, TxType, WireModel
from hub_common.signing import request_headers
from hub_common.telemetry import CORRELATION_HEADER, http_trace_headers

log = logging.getLogger(__name__)

# `caller` names who spends the operator's limit: `ledger`, `gateway` (balance reads), `reconciler` (the feed),
# `hubctl` (resolve, replay, recovery).
OPERATOR_CALLS = Counter(
    "hub_operator_calls_total", "Operator API calls by caller, endpoint and outcome", ["caller", "endpoint", "outcome"]
)
OPERATOR_LATENCY = Histogram("hub_operator_call_seconds", "Operator API call latency", ["caller", "endpoint"])
# The endpoints each caller uses, and the outcomes alerts count with increase(): those children are at 0 from
# the client's creation (the service's start), so the first event is seen.
CALLER_ENDPOINTS = {
    "ledger": ("post", "get"),
    "gateway": ("balance",),
    "reconciler": ("feed",),
    "hubctl": ("get",),
}
ALERTED_OUTCOMES = ("200", "429", "500", "502", "503")

_DEFAULT_RETRY_AFTER_S = 1.0
FEED_PATH = "/v2/transactions"
# The operator's report feed pages at most this many records (contract section 3).
MAX_FEED_PAGE = 1000


class _OperatorModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")


class OperatorTransactionRequest(_OperatorModel):
    transaction_id: str
    player_id: str
    type: TxType
    amount_cents: int
    currency: str
    round_id: str | None = None
    game_id: str | None = None
    original_transaction_id: str | None = None


class OperatorTransaction(_OperatorModel):
    """The operator's record of an applied transaction (POST answer, or GET by transactionId)."""

    transaction_id: str
    operator_transaction_id: str | None = None
    status: str = "COMPLETED"
    balance_cents: int | None = None


class OperatorRecord(WireModel):
    """One item of the operator's report feed (`GET /v2/transactions?from=&to=`), and the payload of the
    `operator.transactions` topic. Only what reconciliation needs is required; other fields are ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True, extra="ignore")

    transaction_id: str
    amount_cents: int
    currency: str
    status: str
    operator_transaction_id: str | None = None
    player_id: str | None = None
    type: str | None = None
    original_transaction_id: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class FeedPage:
    records: list[OperatorRecord]
    # Items the operator sent that are not records (logged and counted by the caller, never silently dropped).
    invalid: list[Any]
    next_cursor: str | None


class OperatorBalance(_OperatorModel):
    balance_cents: int
    currency: str


def _error_fields(body: Any) -> tuple[str | None, str | None, int | None]:
    """(code, message, balanceCents) from either `{"error": {...}}` or a flat error body."""
    if not isinstance(body, dict):
        return None, None, None
    inner = body.get("error") if isinstance(body.get("error"), dict) else body
    assert isinstance(inner, dict)
    balance = inner.get("balanceCents", body.get("balanceCents"))
    code, message = inner.get("code"), inner.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
        balance if isinstance(balance, int) else None,
    )


def _business_code(code: str | None, default: ErrorCode) -> ErrorCode:
    try:
        return ErrorCode(code) if code else default
    except ValueError:
        return default


def retry_after_seconds(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else _DEFAULT_RETRY_AFTER_S
    except ValueError:
        return _DEFAULT_RETRY_AFTER_S


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class OperatorClient:
    """One instance per process; owns its aiohttp session (call `close`). `caller` labels its metrics."""

    def __init__(self, settings: OperatorSettings, *, caller: str, breaker: CircuitBreaker | None = None) -> None:
        self._settings = settings
        self._caller = caller
        for endpoint in CALLER_ENDPOINTS.get(caller, ()):
            OPERATOR_LATENCY.labels(caller, endpoint)
            for outcome in ALERTED_OUTCOMES:
                OPERATOR_CALLS.labels(caller, endpoint, outcome)
        self._base = settings.url.rstrip("/")
        self.breaker = breaker or CircuitBreaker(
            "operator", failure_threshold=settings.breaker_failures, open_s=settings.breaker_reset_s
        )
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=settings.timeout_s, sock_connect=settings.connect_timeout_s),
            json_serialize=lambda o: orjson.dumps(o).decode(),
        )

    async def close(self) -> None:
        await self._session.close()

    def retry_in(self) -> float:
        """Seconds until the breaker lets a call through (0: now)."""
        return self.breaker.retry_in()

    async def post_transaction(
        self, request: OperatorTransactionRequest, *, correlation_id: str
    ) -> OperatorTransaction:
        status, body, headers = await self._call(
            "POST", "/v2/transactions", request.model_dump(mode="json", by_alias=True), correlation_id, "post"
        )
        if status == 200:
            return OperatorTransaction.model_validate(body)
        code, message, balance = _error_fields(body)
        if status == 404:
            raise OperatorRejected(ErrorCode.PLAYER_NOT_FOUND, message or "player not found")
        if status == 409:
            raise OperatorRejected(
                ErrorCode.DUPLICATE_REF_ID, message or "operator holds another transaction with this id"
            )
        if status == 400:
            # The operator refuses this body for good (e.g. a refund of a refund): resending cannot help.
            raise OperatorRejected(ErrorCode.INVALID_REQUEST, message or "operator refused the request")
        if status == 422:
            error = _business_code(code, ErrorCode.INVALID_REQUEST)
            raise OperatorRejected(error, message or f"operator rejected: {error}", balance_cents=balance)
        raise self._technical(status, headers, method="POST")

    async def get_transaction(self, transaction_id: str, *, correlation_id: str) -> OperatorTransaction | None:
        """The operator's record of `transaction_id`, or None when it never applied it."""
        path = str(URL("/v2/transactions").with_query(transactionId=transaction_id))
        status, body, headers = await self._call("GET", path, None, correlation_id, "get")
        if status == 200:
            record = body.get("items", [body])[0] if isinstance(body, dict) and "items" in body else body
            if not record:
                return None
            return OperatorTransaction.model_validate(record)
        if status == 404:
            return None
        raise self._technical(status, headers, method="GET")

    async def get_balance(self, player_id: str, *, correlation_id: str) -> OperatorBalance:
        status, body, headers = await self._call(
            "GET", f"/v2/players/{URL.build(path=player_id).raw_path}/balance", None, correlation_id, "balance"
        )
        if status == 200:
            return OperatorBalance.model_validate(body)
        if status == 404:
            raise OperatorRejected(ErrorCode.PLAYER_NOT_FOUND, "player not found")
        raise self._technical(status, headers, method="GET")

    async def list_transactions(
        self, start: datetime, end: datetime, *, cursor: str | None, limit: int, correlation_id: str
    ) -> FeedPage:
        """One page of the operator's report feed: records created in [start, end), from `cursor` on."""
        params = {"from": _iso(start), "to": _iso(end), "limit": str(min(max(limit, 1), MAX_FEED_PAGE))}
        if cursor:
            params["cursor"] = cursor
        path = str(URL(FEED_PATH).with_query(params))
        status, body, headers = await self._call("GET", path, None, correlation_id, "feed")
        if status != 200:
            raise self._technical(status, headers, method="GET")
        if not isinstance(body, dict) or not isinstance(body.get("items", []), list):
            raise OperatorTechnicalError("operator feed page is not {items, nextCursor}", outcome_unknown=False)
        records: list[OperatorRecord] = []
        invalid: list[Any] = []
        for item in body.get("items") or []:
            try:
                records.append(OperatorRecord.model_validate(item))
            except ValidationError:
                invalid.append(item)
        next_cursor = body.get("nextCursor")
        return FeedPage(records, invalid, str(next_cursor) if next_cursor else None)

    def _technical(self, status: int, headers: dict[str, str], *, method: str) -> OperatorTechnicalError:
        if status == 429:
            return OperatorRateLimited(retry_after_seconds(headers.get("Retry-After")))
        # A 5xx on a POST may come after the wallet applied it; a 4xx (e.g. a bad signature) did not apply.
        return OperatorTechnicalError(
            f"operator answered {status}", outcome_unknown=method == "POST" and status >= 500, status=status
        )

    async def _call(
        self, method: str, path_with_query: str, payload: dict[str, Any] | None, correlation_id: str, endpoint: str
    ) -> tuple[int, Any, dict[str, str]]:
        wait = self.breaker.acquire()
        if wait > 0:
            OPERATOR_CALLS.labels(self._caller, endpoint, "circuit_open").inc()
            raise CircuitOpenError(wait)
        raw = orjson.dumps(payload) if payload is not None else b""
        headers = {
            "X-Client-Id": self._settings.client_id,
            CORRELATION_HEADER: correlation_id,
            **request_headers(self._settings.secret, method, path_with_query, raw),
            **http_trace_headers(),
        }
        if payload is not None:
            headers["Content-Type"] = "application/json"
        try:
            with OPERATOR_LATENCY.labels(self._caller, endpoint).time():
                async with self._session.request(
                    method,
                    # Sent exactly as signed: the operator verifies the raw request target.
                    URL(self._base + path_with_query, encoded=True),
                    data=raw if payload is not None else None,
                    headers=headers,
                ) as response:
                    text = await response.read()
                    status, resp_headers = response.status, dict(response.headers)
        except asyncio.CancelledError:
            self.breaker.release()  # no verdict: a claimed probe must not stay claimed
            raise
        except aiohttp.ClientConnectorError as exc:
            self._failed(endpoint, "connect_error")
            raise OperatorTechnicalError(f"cannot connect to the operator: {exc}", outcome_unknown=False) from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            self._failed(endpoint, "timeout" if isinstance(exc, TimeoutError) else "io_error")
            raise OperatorTechnicalError(
                f"operator call failed: {type(exc).__name__}", outcome_unknown=method == "POST"
            ) from exc
        try:
            body: Any = orjson.loads(text) if text else None
        except orjson.JSONDecodeError:
            body = None
        if status >= 500:
            self._failed(endpoint, str(status))
        else:
            # Any other answer (429 included: the operator protecting itself) shows the operator is up.
            self.breaker.record_success()
            OPERATOR_CALLS.labels(self._caller, endpoint, str(status)).inc()
        return status, body, resp_headers

    def _failed(self, endpoint: str, outcome: str) -> None:
        self.breaker.record_failure()
        OPERATOR_CALLS.labels(self._caller, endpoint, outcome).inc()
