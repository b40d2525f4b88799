"""A signed client of the gateway API, for RGS simulators, benchmarks and tests."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from pydantic import SecretStr

from hub_common.signing import request_headers


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: CIMultiDictProxy[str]
    body: Any

    @property
    def error_code(self) -> str | None:
        if isinstance(self.body, dict) and isinstance(self.body.get("error"), dict):
            code = self.body["error"].get("code")
            return str(code) if code is not None else None
        return None


class GatewayClient:
    def __init__(self, session: aiohttp.ClientSession, base_url: str, client_id: str, secret: SecretStr) -> None:
        self._session = session
        self._base = base_url.rstrip("/")
        self.client_id = client_id
        self._secret = secret

    async def request(
        self,
        method: str,
        path_with_query: str,
        *,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        now: float | None = None,
    ) -> GatewayResponse:
        signed = {
            "X-Client-Id": self.client_id,
            **request_headers(self._secret, method, path_with_query, body, now=now),
        }
        if body:
            signed["Content-Type"] = "application/json"
        async with self._session.request(
            method, self._base + path_with_query, data=body or None, headers={**signed, **(headers or {})}
        ) as response:
            raw = await response.read()
            try:
                parsed: Any = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                parsed = raw.decode(errors="replace")
            return GatewayResponse(response.status, response.headers, parsed)

    async def post_transaction(
        self,
        payload: Mapping[str, Any] | bytes,
        *,
        idempotency_key: str | None,
        headers: Mapping[str, str] | None = None,
    ) -> GatewayResponse:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        extra = dict(headers or {})
        if idempotency_key is not None:
            extra["Idempotency-Key"] = idempotency_key
        return await self.request("POST", "/v1/transactions", body=body, headers=extra)

    async def get_transaction(self, ref_id: str) -> GatewayResponse:
        return await self.request("GET", f"/v1/transactions/{quote(ref_id, safe='')}")

    async def get_balance(self, player_id: str) -> GatewayResponse:
        return await self.request("GET", f"/v1/players/{quote(player_id, safe='')}/balance")
