"""Composition root of the mock RGS."""

from __future__ import annotations

import time

from aiohttp import web

from hub_common.http import Ops
from mock_rgs.admin import AdminHandlers
from mock_rgs.http_errors import error_middleware
from mock_rgs.settings import MockRgsSettings
from mock_rgs.state import Clock, RgsState
from mock_rgs.webhooks import WebhookReceiver

SERVICE = "mock-rgs"
STATE = web.AppKey("mock_rgs_state", RgsState)


def create_app(settings: MockRgsSettings, *, clock: Clock = time.time) -> web.Application:
    state = RgsState.build(settings, clock)
    app = web.Application(middlewares=[error_middleware])
    app[STATE] = state
    ops = Ops(SERVICE)
    ops.add_routes(app)
    WebhookReceiver(state).add_routes(app)
    AdminHandlers(state).add_routes(app)
    # All state is in memory: once the app has started it can serve.
    app.cleanup_ctx.append(ops.ready_while_running)
    return app
