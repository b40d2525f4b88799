"""Typed async client of the mock operator's admin API, for tests, `make up` and benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import aiohttp

from hub_common.errors import HubError
from mock_operator.models import (
    ConfigIn,
    ConfigOut,
    FaultConfig,
    LedgerOut,
    OperatorRecord,
    PlayerSeed,
    PlayersIn,
    RecordChange,
    RecordSeed,
    RecordsIn,
    StatsOut,
)


class AdminClientError(HubError):
    """The admin API answered something other than 2xx."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:200]}", status=status)
        self.status = status
        self.body = body


class OperatorAdminClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")

    async def seed_players(self, players: Iterable[PlayerSeed]) -> None:
        await self._call("POST", "/_admin/players", PlayersIn(players=list(players)).to_wire())

    async def player(self, player_id: str) -> PlayerSeed:
        return PlayerSeed.model_validate(await self._call("GET", f"/_admin/players/{player_id}"))

    async def add_records(self, records: Iterable[RecordSeed]) -> list[OperatorRecord]:
        """Operator-only records (no balance effect), in the ledger and the feed."""
        body = await self._call("POST", "/_admin/records", RecordsIn(records=list(records)).to_wire())
        return [OperatorRecord.model_validate(r) for r in body["records"]]

    async def alter_record(self, transaction_id: str, change: RecordChange) -> OperatorRecord:
        """Alter the amount, currency or status of a stored record (its feed position stays)."""
        path = f"/_admin/records/{transaction_id}"
        return OperatorRecord.model_validate(
            await self._call("PATCH", path, change.model_dump(mode="json", by_alias=True, exclude_none=True))
        )

    async def lose_record(self, transaction_id: str) -> OperatorRecord:
        """Make the operator lose a stored record (gone from lookups and the feed; balances untouched)."""
        return OperatorRecord.model_validate(await self._call("DELETE", f"/_admin/records/{transaction_id}"))

    async def stats(self) -> StatsOut:
        return StatsOut.model_validate(await self._call("GET", "/_admin/stats"))

    async def ledger(self) -> LedgerOut:
        return LedgerOut.model_validate(await self._call("GET", "/_admin/ledger"))

    async def set_faults(self, faults: FaultConfig) -> None:
        """Replace the fault profile (fields not set are off)."""
        await self._call("POST", "/_admin/faults", faults.to_wire())

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/_admin/faults")

    async def set_rate_limit(self, per_minute: int) -> ConfigOut:
        body = ConfigIn(rate_limit_per_minute=per_minute).to_wire()
        return ConfigOut.model_validate(await self._call("POST", "/_admin/config", body))

    async def reset(self) -> None:
        await self._call("POST", "/_admin/reset")

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with self._session.request(method, self._base_url + path, json=body) as response:
            if response.status >= 300:
                raise AdminClientError(method, path, response.status, await response.text())
            return await response.json()
