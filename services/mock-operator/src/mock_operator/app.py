"""Composition root of the mock operator."""

from __future__ import annotations

import time

from aiohttp import web

from hub_common.http import Ops
from mock_operator.admin import AdminHandlers
from mock_operator.http_errors import error_middleware
from mock_operator.pipeline import v2_middleware
from mock_operator.settings import MockOperatorSettings
from mock_operator.state import OperatorState
from mock_operator.v2 import V2Handlers
from mock_operator.wallet import Clock

SERVICE = "mock-operator"
STATE = web.AppKey("mock_operator_state", OperatorState)


def create_app(settings: MockOperatorSettings, *, clock: Clock = time.time) -> web.Application:
    state = OperatorState.build(settings, clock)
    # Outermost first: the /v2 pipeline counts and guards the call, then errors become answers inside it,
    # so the pipeline's metrics see the final status.
    app = web.Application(middlewares=[v2_middleware(state), error_middleware])
    app[STATE] = state
    ops = Ops(SERVICE)
    ops.add_routes(app)
    V2Handlers(state).add_routes(app)
    AdminHandlers(state).add_routes(app)
    # All state is in memory: once the app has started it can serve.
    app.cleanup_ctx.append(ops.ready_while_running)
    return app
