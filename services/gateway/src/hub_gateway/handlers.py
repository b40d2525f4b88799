"""Thin `/v1` handlers: parse, call a service, hand the result to `http_errors`. The middleware authenticated the
request before (`auth.AUTHENTICATED`: the client and the raw body its signature covered)."""

from __future__ import annotations

from aiohttp import web

from hub_gateway import http_errors
from hub_gateway.auth import AUTHENTICATED
from hub_gateway.balance import BalanceService
from hub_gateway.middleware import CORRELATION_ID
from hub_gateway.service import TransactionService
from hub_gateway.settings import GatewaySettings
from hub_gateway.validation import IDEMPOTENCY_HEADER, idempotency_key, parse_transaction, path_text

SETTINGS = web.AppKey("gateway_settings", GatewaySettings)
TRANSACTIONS = web.AppKey("gateway_transactions", TransactionService)
BALANCES = web.AppKey("gateway_balances", BalanceService)


async def post_transaction(request: web.Request) -> web.Response:
    caller = request[AUTHENTICATED]
    key = idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    tx_request = parse_transaction(caller.body, request.app[SETTINGS].supported_currencies)
    correlation_id = request[CORRELATION_ID]
    outcome = await request.app[TRANSACTIONS].submit(caller.client_id, key, tx_request, correlation_id)
    return http_errors.outcome_response(outcome, correlation_id)


async def get_transaction(request: web.Request) -> web.Response:
    caller = request[AUTHENTICATED]
    ref_id = path_text(request.match_info["ref_id"], "refId")
    transaction = await request.app[TRANSACTIONS].get(caller.client_id, ref_id)
    return http_errors.json_response(transaction.to_wire(), 200)


async def get_balance(request: web.Request) -> web.Response:
    caller = request[AUTHENTICATED]
    player_id = path_text(request.match_info["player_id"], "playerId")
    balance = await request.app[BALANCES].balance(caller.client_id, player_id, request[CORRELATION_ID])
    return http_errors.json_response(balance.to_wire(), 200)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/transactions", post_transaction)
    app.router.add_get("/v1/transactions/{ref_id}", get_transaction)
    app.router.add_get("/v1/players/{player_id}/balance", get_balance)
