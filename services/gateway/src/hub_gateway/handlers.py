"""Thin `/v1` handlers: authenticate, parse, call a service, hand the result to `http_errors`."""

from __future__ import annotations

from aiohttp import web

from hub_gateway import http_errors
from hub_gateway.auth import CLIENT_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, Authenticator
from hub_gateway.balance import BalanceService
from hub_gateway.middleware import CORRELATION_ID
from hub_gateway.service import TransactionService
from hub_gateway.settings import GatewaySettings
from hub_gateway.validation import IDEMPOTENCY_HEADER, idempotency_key, parse_transaction, read_body

SETTINGS = web.AppKey("gateway_settings", GatewaySettings)
AUTH = web.AppKey("gateway_auth", Authenticator)
TRANSACTIONS = web.AppKey("gateway_transactions", TransactionService)
BALANCES = web.AppKey("gateway_balances", BalanceService)


async def _authenticate(request: web.Request) -> tuple[str, bytes]:
    """The verified client id and the raw body the signature covered."""
    auth = request.app[AUTH]
    client_id = auth.known_client(request.headers.get(CLIENT_HEADER))
    body = await read_body(request, request.app[SETTINGS].max_body_bytes)
    auth.verify(
        client_id,
        timestamp=request.headers.get(TIMESTAMP_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
        method=request.method,
        path_with_query=request.raw_path,
        body=body,
    )
    return client_id, body


async def post_transaction(request: web.Request) -> web.Response:
    client_id, body = await _authenticate(request)
    key = idempotency_key(request.headers.get(IDEMPOTENCY_HEADER))
    tx_request = parse_transaction(body, request.app[SETTINGS].supported_currencies)
    correlation_id = request[CORRELATION_ID]
    outcome = await request.app[TRANSACTIONS].submit(client_id, key, tx_request, correlation_id)
    return http_errors.outcome_response(outcome, correlation_id)


async def get_transaction(request: web.Request) -> web.Response:
    client_id, _ = await _authenticate(request)
    transaction = await request.app[TRANSACTIONS].get(client_id, request.match_info["ref_id"])
    return http_errors.json_response(transaction.to_wire(), 200)


async def get_balance(request: web.Request) -> web.Response:
    client_id, _ = await _authenticate(request)
    balance = await request.app[BALANCES].balance(client_id, request.match_info["player_id"], request[CORRELATION_ID])
    return http_errors.json_response(balance.to_wire(), 200)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/transactions", post_transaction)
    app.router.add_get("/v1/transactions/{ref_id}", get_transaction)
    app.router.add_get("/v1/players/{player_id}/balance", get_balance)
