"""Typed async client of the mock RGS admin API, for tests, `make up` and benchmarks."""

from __future__ import annotations

from typing import Any

import aiohttp

from hub_common.errors import HubError
from mock_rgs.models import Behaviour, WebhooksOut


class AdminClientError(HubError):
    """The admin API answered something other than 2xx."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {body[:200]}", status=status)
        self.status = status
        self.body = body


class RgsAdminClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")

    async def webhooks(self, event_id: str | None = None) -> WebhooksOut:
        params = {"eventId": event_id} if event_id is not None else None
        return WebhooksOut.model_validate(await self._call("GET", "/_admin/webhooks", params=params))

    async def set_behaviour(self, behaviour: Behaviour) -> None:
        """Replace the behaviour (fields not set are off)."""
        await self._call("POST", "/_admin/behaviour", behaviour.to_wire())

    async def clear_behaviour(self) -> None:
        await self._call("DELETE", "/_admin/behaviour")

    async def reset(self) -> None:
        await self._call("POST", "/_admin/reset")

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, params: dict[str, str] | None = None
    ) -> Any:
        async with self._session.request(method, self._base_url + path, json=body, params=params) as response:
            if response.status >= 300:
                raise AdminClientError(method, path, response.status, await response.text())
            return await response.json()
