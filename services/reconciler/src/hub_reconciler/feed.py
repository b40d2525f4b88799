"""The operator feed poller: pages `GET /v2/transactions?from=&to=&cursor=` continuously, a small page at a time,
through `OperatorClient` and the budget every process shares (at REPORT priority: after every money movement).

Each page is published to operator.transactions and then stored, with the feed's position, in ONE PostgreSQL
transaction: a restart or an outage of any length resumes at the stored cursor. A crash between the two
re-reads the page (the upsert and the join are idempotent). The position is a window [from, to) that ends
`delay_s` before now and is read to its last page; its end becomes the feed's coverage, which the report waits for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from hub_common.envelope import wrap
from hub_common.errors import InfrastructureError
from hub_common.kafka import OPERATOR_TRANSACTIONS, KafkaProducer
from hub_common.operator import (
    Budget,
    CircuitOpenError,
    OperatorClient,
    OperatorRateLimited,
    OperatorTechnicalError,
    Priority,
)
from hub_common.telemetry import new_correlation_id
from hub_reconciler import store
from hub_reconciler.metrics import FEED_INVALID, FEED_LAG, FEED_PAGES, FEED_RECORDS
from hub_reconciler.store import FeedState

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
_MAX_BACKOFF_S = 60.0


@dataclass(frozen=True)
class FeedPolicy:
    name: str
    page_limit: int
    poll_interval_s: float
    delay_s: float
    max_window_s: float
    start_lookback_s: float


class FeedPoller:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: OperatorClient,
        budget: Budget,
        producer: KafkaProducer,
        policy: FeedPolicy,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._pool = pool
        self._client = client
        self._budget = budget
        self._producer = producer
        self._policy = policy
        self._clock = clock
        self._sleep = sleep

    async def state(self) -> FeedState:
        """The stored position, or a fresh one `start_lookback_s` back (not stored until a page is read)."""
        current = await store.load_feed_state(self._pool, self._policy.name)
        if current is not None:
            return current
        start = self._clock() - timedelta(seconds=self._policy.start_lookback_s)
        return FeedState(start, start, None, start)

    def _window(self, state: FeedState) -> FeedState | None:
        """The window to read next: the one in progress, or a new one from the coverage on (None: caught up)."""
        if state.cursor is not None:
            return state
        end = min(
            self._clock() - timedelta(seconds=self._policy.delay_s),
            state.covered_to + timedelta(seconds=self._policy.max_window_s),
        )
        # Caught up: a window shorter than the poll interval waits for the next poll (one call per interval).
        if (end - state.covered_to).total_seconds() < self._policy.poll_interval_s:
            return None
        return FeedState(state.covered_to, end, None, state.covered_to)

    async def step(self) -> bool:
        """Read one page; True when more is to be read at once, False when the feed is caught up."""
        state = await self.state()
        FEED_LAG.set(max((self._clock() - state.covered_to).total_seconds(), 0.0))
        window = self._window(state)
        if window is None:
            return False
        if (wait := self._client.retry_in()) > 0:
            raise CircuitOpenError(wait)
        await self._budget.acquire(Priority.REPORT)
        correlation_id = new_correlation_id()
        page = await self._client.list_transactions(
            window.window_from,
            window.window_to,
            cursor=window.cursor,
            limit=self._policy.page_limit,
            correlation_id=correlation_id,
        )
        seen = self._clock()
        if page.invalid:
            FEED_INVALID.inc(len(page.invalid))
            log.error("operator feed items that are not records", extra={"items": page.invalid[:10]})
        await asyncio.gather(
            *(
                self._producer.send(
                    OPERATOR_TRANSACTIONS,
                    wrap(r, correlation_id=correlation_id, occurred_at=seen),
                    key=r.transaction_id,
                )
                for r in page.records
            )
        )
        done = page.next_cursor is None
        after = FeedState(
            window.window_from,
            window.window_to,
            page.next_cursor,
            window.window_to if done else window.covered_to,
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await store.upsert_records(conn, [(r, seen) for r in page.records])
            await store.save_feed_state(conn, self._policy.name, after)
        FEED_PAGES.inc()
        FEED_RECORDS.inc(len(page.records))
        FEED_LAG.set(max((self._clock() - after.covered_to).total_seconds(), 0.0))
        return not done or self._window(after) is not None

    async def run(self) -> None:
        backoff = 1.0
        while True:
            try:
                more = await self.step()
                backoff = 1.0
            except OperatorRateLimited as exc:
                # Every process pauses, the ledger included: the operator counts all our calls together.
                log.warning("operator feed rate limited", extra={"retryAfterS": exc.retry_after_s})
                await self._budget.defer(exc.retry_after_s)
                continue
            except CircuitOpenError as exc:
                await self._sleep(exc.retry_in_s)
                continue
            except (OperatorTechnicalError, InfrastructureError, *_DB_ERRORS) as exc:
                log.warning("operator feed page failed; retrying from the stored cursor", extra={"error": repr(exc)})
                await self._sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            if not more:
                await self._sleep(self._policy.poll_interval_s)
