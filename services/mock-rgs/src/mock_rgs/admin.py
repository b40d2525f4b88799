"""Admin API of the mock RGS (`/_admin`): read deliveries, set how it answers, reset."""

from __future__ import annotations

from aiohttp import web

from mock_rgs.models import Behaviour
from mock_rgs.state import RgsState


class AdminHandlers:
    def __init__(self, state: RgsState) -> None:
        self._state = state

    def add_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_get("/_admin/webhooks", self.webhooks)
        router.add_get("/_admin/behaviour", self.get_behaviour)
        router.add_post("/_admin/behaviour", self.set_behaviour)
        router.add_delete("/_admin/behaviour", self.clear_behaviour)
        router.add_post("/_admin/reset", self.reset)

    async def webhooks(self, request: web.Request) -> web.Response:
        snapshot = self._state.deliveries.snapshot(request.query.get("eventId"))
        return web.json_response(snapshot.to_wire())

    async def get_behaviour(self, _: web.Request) -> web.Response:
        return web.json_response(self._behaviour_body())

    async def set_behaviour(self, request: web.Request) -> web.Response:
        # A `ValidationError` reaches `http_errors.error_middleware`, which answers 400.
        self._state.responder.set(Behaviour.model_validate_json(await request.read()))
        return web.json_response(self._behaviour_body())

    async def clear_behaviour(self, _: web.Request) -> web.Response:
        self._state.responder.clear()
        return web.json_response(self._behaviour_body())

    async def reset(self, _: web.Request) -> web.Response:
        self._state.reset()
        return web.json_response({"status": "reset"})

    def _behaviour_body(self) -> dict[str, object]:
        responder = self._state.responder
        return {"behaviour": responder.behaviour.to_wire(), "remaining": responder.remaining}
