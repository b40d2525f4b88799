"""The path every `/v2` call takes before its handler: rate limit and stats, signature, injected faults.

The limiter comes first, as at a real operator's edge: a call is counted (and may be refused) before anyone
looks at its signature, so a misbehaving client still burns its own budget.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import Counter

from hub_common.errors import SignatureError
from hub_common.signing import UNKNOWN_CLIENT, verify_request
from hub_common.telemetry import CORRELATION_HEADER, correlation_scope, new_correlation_id
from mock_operator import http_errors
from mock_operator.state import OperatorState

log = logging.getLogger(__name__)

V2_PREFIX = "/v2/"
HANG_POLL_S = 0.05

CALLS = Counter(
    "mock_operator_calls_total", "Operator API calls answered, by endpoint and status", ["endpoint", "status"]
)


def endpoint_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return f"{request.method} {resource.canonical if resource is not None else 'unmatched'}"


def drop_connection(request: web.Request) -> web.Response:
    """Close the socket without an answer; the returned response is never written."""
    if request.transport is not None:
        request.transport.abort()
    return web.Response(status=499)


async def hang(request: web.Request, seconds: float) -> None:
    """Sleep up to `seconds`, but stop once the caller has hung up: nobody is left to answer, and a parked
    handler would only hold up shutdown."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        await asyncio.sleep(min(HANG_POLL_S, remaining))


def v2_middleware(state: OperatorState) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(V2_PREFIX):
            return await handler(request)
        correlation_id = request.headers.get(CORRELATION_HEADER) or new_correlation_id()
        endpoint = endpoint_of(request)
        with correlation_scope(correlation_id):
            response = await _guarded(state, request, handler, endpoint)
            log.debug("operator call", extra={"endpoint": endpoint, "status": response.status})
        CALLS.labels(endpoint, str(response.status)).inc()
        response.headers[CORRELATION_HEADER] = correlation_id
        return response

    return middleware


async def _guarded(state: OperatorState, request: web.Request, handler: Handler, endpoint: str) -> web.StreamResponse:
    now = state.clock()
    forced = state.faults.take_forced_429()
    if forced is not None:
        state.stats.record_call(now, endpoint, accepted=False)
        state.stats.record_fault("force429")
        return http_errors.rate_limited(forced)
    retry_after = state.limiter.try_acquire(now)
    state.stats.record_call(now, endpoint, accepted=retry_after is None)
    if retry_after is not None:
        return http_errors.rate_limited(retry_after)
    try:
        await _verify(state, request)
    except SignatureError as exc:
        return http_errors.signature_error(exc)
    return await _with_faults(state, request, handler)


async def _verify(state: OperatorState, request: web.Request) -> None:
    expected, client_id = state.settings.client_id, request.headers.get("X-Client-Id")
    if expected is not None and client_id is not None and client_id != expected:
        raise SignatureError(UNKNOWN_CLIENT, "X-Client-Id is not a known client")
    verify_request(
        [state.settings.secret],
        timestamp=request.headers.get("X-Timestamp"),
        signature=request.headers.get("X-Signature"),
        method=request.method,
        # The raw target as sent: the signer signed the bytes it put on the wire, not a re-encoded URL.
        path_with_query=request.raw_path,
        body=await request.read(),
        now=state.clock(),
        tolerance_s=state.settings.timestamp_tolerance_s,
    )


async def _with_faults(state: OperatorState, request: web.Request, handler: Handler) -> web.StreamResponse:
    faults = state.faults
    if faults.latency_s > 0:
        state.stats.record_fault("latency")
        await asyncio.sleep(faults.latency_s)
    if faults.roll(faults.config.drop_rate):
        state.stats.record_fault("drop")
        return drop_connection(request)
    if faults.roll(faults.config.error_rate):
        state.stats.record_fault("error")
        return http_errors.injected_error(faults.config.error_status)
    return await handler(request)
