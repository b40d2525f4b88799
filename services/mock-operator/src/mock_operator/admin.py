"""Admin API of the mock operator (`/_admin`, unsigned): seed players, inject faults, read what it saw."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from mock_operator.models import (
    ConfigIn,
    ConfigOut,
    FaultConfig,
    LedgerOut,
    PlayerSeed,
    PlayersIn,
    RecordChange,
    RecordsIn,
)
from mock_operator.state import OperatorState

M = TypeVar("M", bound=BaseModel)


class AdminHandlers:
    def __init__(self, state: OperatorState) -> None:
        self._state = state

    def add_routes(self, app: web.Application) -> None:
        router = app.router
        router.add_post("/_admin/players", self.seed_players)
        router.add_get("/_admin/players/{playerId}", self.get_player)
        router.add_get("/_admin/faults", self.get_faults)
        router.add_post("/_admin/faults", self.set_faults)
        router.add_delete("/_admin/faults", self.clear_faults)
        router.add_get("/_admin/config", self.get_config)
        router.add_post("/_admin/config", self.set_config)
        router.add_get("/_admin/stats", self.stats)
        router.add_get("/_admin/ledger", self.ledger)
        router.add_post("/_admin/records", self.add_records)
        router.add_patch("/_admin/records/{transactionId}", self.alter_record)
        router.add_delete("/_admin/records/{transactionId}", self.lose_record)
        router.add_post("/_admin/reset", self.reset)

    async def seed_players(self, request: web.Request) -> web.Response:
        body = await _parse(request, PlayersIn)
        self._state.wallet.seed(body.players)
        return web.json_response({"players": [p.to_wire() for p in body.players]})

    async def get_player(self, request: web.Request) -> web.Response:
        player = self._state.wallet.player(request.match_info["playerId"])
        seed = PlayerSeed(player_id=player.player_id, balance_cents=player.balance_cents, currency=player.currency)
        return web.json_response(seed.to_wire())

    async def get_faults(self, _: web.Request) -> web.Response:
        return web.json_response(self._faults_body())

    async def set_faults(self, request: web.Request) -> web.Response:
        self._state.faults.set(await _parse(request, FaultConfig))
        return web.json_response(self._faults_body())

    async def clear_faults(self, _: web.Request) -> web.Response:
        self._state.faults.clear()
        return web.json_response(self._faults_body())

    async def get_config(self, _: web.Request) -> web.Response:
        return web.json_response(ConfigOut(rate_limit_per_minute=self._state.limiter.limit).to_wire())

    async def set_config(self, request: web.Request) -> web.Response:
        body = await _parse(request, ConfigIn)
        self._state.limiter.limit = body.rate_limit_per_minute
        return web.json_response(ConfigOut(rate_limit_per_minute=self._state.limiter.limit).to_wire())

    async def stats(self, _: web.Request) -> web.Response:
        return web.json_response(self._state.stats.snapshot(self._state.limiter.limit).to_wire())

    async def ledger(self, _: web.Request) -> web.Response:
        ledger = LedgerOut(transactions=self._state.wallet.records(), apply_counts=self._state.wallet.apply_counts())
        return web.json_response(ledger.to_wire())

    async def add_records(self, request: web.Request) -> web.Response:
        body = await _parse(request, RecordsIn)
        records = [self._state.wallet.add_record(seed) for seed in body.records]
        return web.json_response({"records": [r.to_wire() for r in records]})

    async def alter_record(self, request: web.Request) -> web.Response:
        change = await _parse(request, RecordChange)
        record = self._state.wallet.alter_record(request.match_info["transactionId"], change)
        return web.json_response(record.to_wire())

    async def lose_record(self, request: web.Request) -> web.Response:
        record = self._state.wallet.lose_record(request.match_info["transactionId"])
        return web.json_response(record.to_wire())

    async def reset(self, _: web.Request) -> web.Response:
        self._state.reset()
        return web.json_response({"status": "reset"})

    def _faults_body(self) -> dict[str, object]:
        faults = self._state.faults
        return {"faults": faults.config.to_wire(), "remaining429": faults.remaining429}


async def _parse(request: web.Request, model: type[M]) -> M:
    # A `ValidationError` reaches `http_errors.error_middleware`, which answers 400.
    return model.model_validate_json(await request.read())
