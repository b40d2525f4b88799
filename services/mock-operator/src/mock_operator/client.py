"""A minimal signed client of the `/v2` API, for tests and benchmarks of the mock itself.

The Hub's production client is `hub_common.operator.OperatorClient`; this one returns raw answers (status,
headers, JSON) so a test can assert on every error the mock produces.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import orjson
from pydantic import SecretStr
from yarl import URL

from hub_common.signing import request_headers
from mock_operator.models import TransactionIn


@dataclass(frozen=True)
class V2Response:
    status: int
    headers: dict[str, str]
    body: Any


class SignedV2Client:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        secret: SecretStr,
        *,
        client_id: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._secret = secret
        self._client_id = client_id
        self._clock = clock

    async def post_transaction(self, tx: TransactionIn) -> V2Response:
        return await self.request("POST", "/v2/transactions", tx.to_wire())

    async def get_transaction(self, transaction_id: str) -> V2Response:
        return await self.request("GET", "/v2/transactions?" + urlencode({"transactionId": transaction_id}))

    async def feed(self, **params: str | int) -> V2Response:
        """`from`, `to`, `cursor`, `limit` as the API names them (pass `**{"from": ...}`)."""
        return await self.request("GET", "/v2/transactions?" + urlencode({k: str(v) for k, v in params.items()}))

    async def balance(self, player_id: str) -> V2Response:
        return await self.request("GET", f"/v2/players/{quote(player_id, safe='')}/balance")

    async def request(
        self, method: str, path_with_query: str, body: dict[str, Any] | None = None, *, sign: bool = True
    ) -> V2Response:
        raw = orjson.dumps(body) if body is not None else b""
        headers = {"Content-Type": "application/json"}
        if sign:
            headers.update(request_headers(self._secret, method, path_with_query, raw, now=self._clock()))
        if self._client_id is not None:
            headers["X-Client-Id"] = self._client_id
        # `encoded=True`: send exactly the target that was signed, without yarl re-quoting it.
        url = URL(self._base_url + path_with_query, encoded=True)
        async with self._session.request(method, url, data=raw, headers=headers) as response:
            payload = await response.json() if response.content_type == "application/json" else await response.text()
            return V2Response(response.status, dict(response.headers), payload)
