"""Handlers of the operator wallet API (`/v2`, contract section 3). They run behind `pipeline.v2_middleware`."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from mock_operator.errors import InvalidRequestError
from mock_operator.models import TransactionIn, TransactionResult
from mock_operator.pipeline import drop_connection, hang
from mock_operator.state import OperatorState

MAX_FEED_LIMIT = 1000
DEFAULT_FEED_LIMIT = 100


class V2Handlers:
    def __init__(self, state: OperatorState) -> None:
        self._state = state

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v2/transactions", self.post_transaction)
        app.router.add_get("/v2/transactions", self.get_transactions)
        app.router.add_get("/v2/players/{playerId}/balance", self.get_balance)

    async def post_transaction(self, request: web.Request) -> web.Response:
        tx = TransactionIn.model_validate_json(await request.read())
        record = await self._state.wallet.submit(tx)
        faults = self._state.faults
        if faults.roll(faults.config.timeout_after_apply_rate):
            # The money moved but the caller never learns it: the case the Hub must resolve by a lookup.
            self._state.stats.record_fault("timeoutAfterApply")
            await hang(request, faults.hang_s)
            return drop_connection(request)
        result = TransactionResult(
            transaction_id=record.transaction_id,
            operator_transaction_id=record.operator_transaction_id,
            balance_cents=record.balance_cents,
        )
        return web.json_response(result.to_wire())

    async def get_transactions(self, request: web.Request) -> web.Response:
        transaction_id = request.query.get("transactionId")
        if transaction_id is not None:
            return web.json_response(self._state.wallet.record(transaction_id).to_wire())
        page = self._state.wallet.feed(
            start=_parse_time(request.query.get("from"), "from"),
            end=_parse_time(request.query.get("to"), "to"),
            cursor=request.query.get("cursor"),
            limit=_parse_limit(request.query.get("limit")),
        )
        return web.json_response(page.to_wire())

    async def get_balance(self, request: web.Request) -> web.Response:
        balance = self._state.wallet.balance(request.match_info["playerId"])
        return web.json_response(balance.to_wire())


def _parse_time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    # An unencoded `+01:00` arrives as ` 01:00` after query decoding; take it back rather than refuse it.
    try:
        parsed = datetime.fromisoformat(value.replace(" ", "+"))
    except ValueError:
        raise InvalidRequestError(f"{name} must be an ISO-8601 time") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_FEED_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_FEED_LIMIT:
        raise InvalidRequestError(f"limit must be an integer from 1 to {MAX_FEED_LIMIT}")
    return int(value)
