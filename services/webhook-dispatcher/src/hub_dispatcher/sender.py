"""The HTTP side of a delivery: one POST through the shared session, measured and classified."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from hub_dispatcher.endpoints import Endpoint
from hub_dispatcher.policy import parse_retry_after


@dataclass(frozen=True)
class Response:
    at: datetime
    status: int | None
    latency_s: float
    error: str | None
    excerpt: str | None
    retry_after_s: float | None


class Sender:
    def __init__(self, session: aiohttp.ClientSession, *, excerpt_bytes: int) -> None:
        self._session = session
        self._excerpt_bytes = excerpt_bytes

    async def post(self, endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> Response:
        async with endpoint.limit:
            at = datetime.now(UTC)
            started = time.monotonic()
            try:
                async with self._session.post(
                    endpoint.url,
                    data=body,
                    headers=headers,
                    timeout=endpoint.client_timeout,
                    allow_redirects=False,
                ) as resp:
                    raw = await resp.content.read(self._excerpt_bytes) if self._excerpt_bytes else b""
                    return Response(
                        at=at,
                        status=resp.status,
                        latency_s=time.monotonic() - started,
                        error=None if resp.status < 300 else f"HTTP {resp.status}",
                        excerpt=raw.decode(errors="replace") or None,
                        retry_after_s=parse_retry_after(resp.headers.get("Retry-After")),
                    )
            except TimeoutError:
                error = f"timeout after {endpoint.timeout_s:g} s"
            except aiohttp.ClientError as exc:
                error = f"connection error: {type(exc).__name__}: {exc}"[:500]
            return Response(
                at=at,
                status=None,
                latency_s=time.monotonic() - started,
                error=error,
                excerpt=None,
                retry_after_s=None,
            )
