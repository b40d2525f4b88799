"""The operator's report feed: a signed HTTP client for `GET /v2/transactions?from=&to=&cursor=&limit=`, and the
poller that publishes each record to operator.transactions (key = transactionId = refId).

Every page is one operator call out of the 60/min budget the ledger also spends: pages are large (limit 1000)
and polls rare. `gate` lets the caller charge each call to a shared budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
from pydantic import ValidationError
from yarl import URL

from hub_common.envelope import wrap
from hub_common.errors import InfrastructureError
from hub_common.kafka import OPERATOR_TRANSACTIONS, KafkaProducer
from hub_common.signing import request_headers
from hub_common.telemetry import CORRELATION_HEADER, http_trace_headers, new_correlation_id
from hub_reconciler.errors import OperatorFeedError
from hub_reconciler.metrics import FEED_POLLS, FEED_RECORDS
from hub_reconciler.models import OperatorRecord
from hub_reconciler.settings import OperatorFeedSettings

log = logging.getLogger(__name__)

FEED_PATH = "/v2/transactions"
_MAX_RETRY_AFTER_S = 60.0

Gate = Callable[[], Awaitable[None]]
Sleep = Callable[[float], Awaitable[None]]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def _no_gate() -> None:
    return None


class OperatorFeedClient:
    def __init__(
        self,
        settings: OperatorFeedSettings,
        session: aiohttp.ClientSession,
        *,
        gate: Gate = _no_gate,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._session = session
        self._gate = gate
        self._sleep = sleep

    async def records(self, start: datetime, end: datetime) -> AsyncIterator[OperatorRecord]:
        """Every operator record in [start, end), page by page."""
        cursor: str | None = None
        while True:
            page = await self._page(start, end, cursor)
            for item in page.get("items") or []:
                try:
                    yield OperatorRecord.model_validate(item)
                except ValidationError as exc:
                    log.warning("operator feed item skipped", extra={"errors": exc.error_count(), "item": item})
            cursor = page.get("nextCursor")
            if not cursor:
                return

    async def _page(self, start: datetime, end: datetime, cursor: str | None) -> dict[str, Any]:
        params = {"from": iso(start), "to": iso(end), "limit": str(self._settings.page_limit)}
        if cursor:
            params["cursor"] = cursor
        # Sign exactly the bytes we send: keep ':' literal, and stop aiohttp from re-encoding the query.
        path_qs = f"{FEED_PATH}?{urlencode(params, safe=':')}"
        for attempt in range(1, self._settings.max_attempts + 1):
            await self._gate()
            correlation_id = new_correlation_id()
            headers = {
                "X-Client-Id": self._settings.client_id,
                CORRELATION_HEADER: correlation_id,
                **http_trace_headers(),
                **request_headers(self._settings.secret, "GET", path_qs, b""),
            }
            url = URL(self._settings.url.rstrip("/") + path_qs, encoded=True)
            try:
                async with self._session.get(
                    url, headers=headers, timeout=aiohttp.ClientTimeout(total=self._settings.timeout_s)
                ) as response:
                    if response.status == 429 and attempt < self._settings.max_attempts:
                        await self._sleep(_retry_after(response.headers.get("Retry-After")))
                        continue
                    if response.status != 200:
                        raise OperatorFeedError(f"operator feed answered {response.status}", status=response.status)
                    body = await response.json()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise OperatorFeedError(f"operator feed unreachable: {type(exc).__name__}") from exc
            if not isinstance(body, dict):
                raise OperatorFeedError("operator feed body is not an object")
            return body
        raise OperatorFeedError("operator feed kept answering 429", status=429)


def _retry_after(value: str | None) -> float:
    try:
        return min(max(float(value or 1), 0.0), _MAX_RETRY_AFTER_S)
    except ValueError:
        return 1.0


class FeedPoller:
    """Publishes the feed continuously: each poll reads [last end - overlap, now) and advances on success."""

    def __init__(
        self,
        client: OperatorFeedClient,
        producer: KafkaProducer,
        *,
        interval_s: float,
        lookback_s: float,
        overlap_s: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._producer = producer
        self._interval_s = interval_s
        self._overlap = timedelta(seconds=overlap_s)
        self._clock = clock
        self._sleep = sleep
        self._since = clock() - timedelta(seconds=lookback_s)

    async def poll_once(self) -> int:
        end = self._clock()
        published = 0
        async for record in self._client.records(self._since - self._overlap, end):
            envelope = wrap(record, correlation_id=new_correlation_id())
            await self._producer.send(OPERATOR_TRANSACTIONS, envelope, key=record.transaction_id)
            published += 1
        self._since = end
        FEED_RECORDS.inc(published)
        return published

    async def run(self) -> None:
        while True:
            try:
                count = await self.poll_once()
                FEED_POLLS.labels(outcome="ok").inc()
                log.info("operator feed polled", extra={"published": count})
            except InfrastructureError as exc:
                FEED_POLLS.labels(outcome="error").inc()
                log.warning("operator feed poll failed; next poll retries the window", extra={"error": str(exc)})
            await self._sleep(self._interval_s)
