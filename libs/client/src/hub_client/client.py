"""`HubClient` (blocking) and `AsyncHubClient` (asyncio): the same operations, driven over httpx."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Self, TypeVar

import httpx

from hub_client._flow import Flow, FollowPolicy, RetryPolicy, Sleep, transaction_path
from hub_client._flow import Flows as _Flows
from hub_client.models import Balance, Transaction, TransactionRequest

T = TypeVar("T")

# Above the gateway's outcome budget (default 5 s): a POST is answered within it, with the outcome or a 202.
DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)


def _from_env(environ: Mapping[str, str]) -> tuple[str, str, str]:
    names = ("HUB_URL", "HUB_CLIENT_ID", "HUB_CLIENT_SECRET")
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise ValueError(f"set {', '.join(missing)} (e.g. `set -a; source .hub/env` after `make up`)")
    return environ["HUB_URL"], environ["HUB_CLIENT_ID"], environ["HUB_CLIENT_SECRET"]


class HubClient:
    """Blocking client. `base_url` is the gateway's root; `secret` one of the client's active secrets.

    Pass `http` to bring your own `httpx.Client` (TLS, proxies, transports); it is then yours to close.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        secret: str,
        *,
        retry: RetryPolicy | None = None,
        follow: FollowPolicy | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self._follow = follow or FollowPolicy()
        self._flows = _Flows(base_url, client_id, secret, retry or RetryPolicy(), self._follow)
        self._owned = http is None
        self._http = http or httpx.Client(timeout=DEFAULT_TIMEOUT)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> HubClient:
        """From HUB_URL, HUB_CLIENT_ID and HUB_CLIENT_SECRET."""
        return cls(*_from_env(environ))

    def _run(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    response = self._http.send(step.request)
                except httpx.TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    def submit(
        self, request: TransactionRequest, *, idempotency_key: str | None = None, follow: bool = True
    ) -> Transaction:
        """Send a BET, WIN or REFUND; return it COMPLETED or raise its typed error.

        The Idempotency-Key (default: the refId) is reused by every retry. With `follow`, a 202 is followed
        until final (FollowPolicy.timeout_s, then StillPending); without, the PENDING transaction is returned
        and its webhook tells the outcome.
        """
        return self._run(self._flows.submit(request, idempotency_key, follow))

    def get(self, ref_id: str) -> Transaction:
        return self._run(self._flows.get(ref_id))

    def wait(self, ref_id: str, timeout_s: float | None = None) -> Transaction:
        """The transaction once final (COMPLETED, REJECTED or FAILED); StillPending if `timeout_s` runs out."""
        return self._run(self._flows.wait(transaction_path(ref_id), timeout_s or self._follow.timeout_s))

    def balance(self, player_id: str) -> Balance:
        return self._run(self._flows.balance(player_id))

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class AsyncHubClient:
    """The asyncio twin of `HubClient` (same arguments, same behaviour; `http` is an `httpx.AsyncClient`)."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        secret: str,
        *,
        retry: RetryPolicy | None = None,
        follow: FollowPolicy | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._follow = follow or FollowPolicy()
        self._flows = _Flows(base_url, client_id, secret, retry or RetryPolicy(), self._follow)
        self._owned = http is None
        self._http = http or httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> AsyncHubClient:
        return cls(*_from_env(environ))

    async def _run(self, flow: Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    response = await self._http.send(step.request)
                except httpx.TransportError as exc:
                    step = flow.throw(exc)
                else:
                    step = flow.send(response)
        except StopIteration as done:
            result: T = done.value
            return result

    async def submit(
        self, request: TransactionRequest, *, idempotency_key: str | None = None, follow: bool = True
    ) -> Transaction:
        return await self._run(self._flows.submit(request, idempotency_key, follow))

    async def get(self, ref_id: str) -> Transaction:
        return await self._run(self._flows.get(ref_id))

    async def wait(self, ref_id: str, timeout_s: float | None = None) -> Transaction:
        return await self._run(self._flows.wait(transaction_path(ref_id), timeout_s or self._follow.timeout_s))

    async def balance(self, player_id: str) -> Balance:
        return await self._run(self._flows.balance(player_id))

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()


__all__ = ["AsyncHubClient", "HubClient"]
