"""Per-request plumbing: correlation id, authentication of `/v1`, server span, metrics, and turning errors into
contract responses.

The caller's trace context (`traceparent`, `tracestate`, `baggage`) is taken only from an authenticated request:
the server span of an unauthenticated one (and of a request that fails authentication) starts a trace of its own.
Otherwise anyone could attach spans to another client's trace, force sampling of every request, or carry
baggage into the Hub's telemetry without a valid signature. Authentication therefore runs here, before the span;
the handlers read its result (`auth.AUTHENTICATED`).
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract
from prometheus_client import Counter, Histogram

from hub_common.errors import HubError
from hub_common.telemetry import CORRELATION_HEADER, correlation_scope, new_correlation_id
from hub_gateway import http_errors
from hub_gateway.auth import AUTHENTICATED, Authenticated

log = logging.getLogger(__name__)
tracer = trace.get_tracer("hub_gateway")

CORRELATION_ID = web.RequestKey("correlation_id", str)

REQUESTS = Counter("gateway_http_requests_total", "HTTP requests by route and status", ["method", "route", "status"])
LATENCY = Histogram("gateway_http_request_duration_seconds", "HTTP request latency", ["method", "route"])
# A series' child looked up once: routes and statuses are few, and `labels()` costs more than the increment.
_requests = functools.cache(REQUESTS.labels)
_latency = functools.cache(LATENCY.labels)
# The series the alerts count with increase() exist from the start at 0, so their first event is seen.
for _status in ("409", "500", "503"):
    _requests("POST", "/v1/transactions", _status)

# A caller's id is echoed into headers, logs and Kafka: accept only a sane token, else mint our own.
_VALID_CORRELATION = re.compile(r"^[\x21-\x7e]{1,128}$")
SIGNED_PREFIX = "/v1/"

Authenticate = Callable[[web.Request], Awaitable[Authenticated]]


def correlation_id_of(request: web.Request) -> str:
    presented = request.headers.get(CORRELATION_HEADER)
    if presented and _VALID_CORRELATION.match(presented):
        return presented
    return new_correlation_id()


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def _signed(request: web.Request) -> bool:
    """A `/v1` request to a route that exists (an unknown route or method is answered 404/405 unauthenticated)."""
    return request.path.startswith(SIGNED_PREFIX) and request.match_info.http_exception is None


def plumbing(authenticate: Authenticate) -> Middleware:
    """The middleware, authenticating `/v1` requests with `authenticate` before the server span starts."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        correlation_id = correlation_id_of(request)
        request[CORRELATION_ID] = correlation_id
        with correlation_scope(correlation_id):
            refused: Exception | None = None
            # Until the caller is authenticated, its trace context is not trusted: a trace of our own.
            parent = Context()
            if _signed(request):
                try:
                    request[AUTHENTICATED] = await authenticate(request)
                    parent = extract(request.headers)
                except Exception as exc:  # answered inside the span, like the handler's own errors
                    refused = exc
            return await _served(
                request, handler, correlation_id=correlation_id, parent=parent, refused=refused, started=started
            )

    return middleware


async def _served(
    request: web.Request,
    handler: Handler,
    *,
    correlation_id: str,
    parent: Context,
    refused: Exception | None,
    started: float,
) -> web.StreamResponse:
    route = _route_name(request)
    with tracer.start_as_current_span(
        f"{request.method} {route}",
        context=parent,
        kind=trace.SpanKind.SERVER,
        # Given at the start: one attribute set built once instead of a locked update per attribute.
        attributes={
            "http.request.method": request.method,
            "http.route": route,
            "hub.correlation_id": correlation_id,
        },
    ) as span:
        try:
            if refused is not None:
                raise refused
            response = await handler(request)
        except HubError as exc:
            response = http_errors.error_response(exc, correlation_id)
        except web.HTTPException as exc:
            # aiohttp's own answers (unknown route, wrong method): keep them, still correlated.
            exc.headers[CORRELATION_HEADER] = correlation_id
            _requests(request.method, route, str(exc.status)).inc()
            raise
        except Exception:
            log.exception("unhandled error", extra={"route": route})
            response = http_errors.problem_response(http_errors.internal_problem(), correlation_id)
        span.set_attribute("http.response.status_code", response.status)
    response.headers[CORRELATION_HEADER] = correlation_id
    _requests(request.method, route, str(response.status)).inc()
    _latency(request.method, route).observe(time.perf_counter() - started)
    return response
