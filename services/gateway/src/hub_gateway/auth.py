"""Request authentication: the client's active secrets verify the HMAC of the raw request (contract section 1)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web
from pydantic import SecretStr

from hub_common.errors import SignatureError
from hub_common.signing import UNKNOWN_CLIENT, verify_request
from hub_common.telemetry import logged_id
from hub_gateway.validation import read_body

log = logging.getLogger(__name__)

CLIENT_HEADER = "X-Client-Id"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_HEADER = "X-Signature"


@dataclass(frozen=True)
class Authenticated:
    """A request whose signature verified: its client and the raw body the signature covered."""

    client_id: str
    body: bytes


AUTHENTICATED = web.RequestKey("gateway_authenticated", Authenticated)


class Authenticator:
    def __init__(
        self,
        clients: Mapping[str, Sequence[SecretStr]],
        *,
        tolerance_s: int,
        max_body_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clients = {client: tuple(secrets) for client, secrets in clients.items()}
        self._tolerance_s = tolerance_s
        self._max_body_bytes = max_body_bytes
        self._clock = clock

    async def authenticate(self, request: web.Request) -> Authenticated:
        """The verified client and the raw body (read here: the signature covers it byte for byte)."""
        client_id = self.known_client(request.headers.get(CLIENT_HEADER))
        body = await read_body(request, self._max_body_bytes)
        self.verify(
            client_id,
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            signature=request.headers.get(SIGNATURE_HEADER),
            method=request.method,
            path_with_query=request.raw_path,
            body=body,
        )
        return Authenticated(client_id, body)

    def known_client(self, client_id: str | None) -> str:
        """The client id, checked before the body is read so unknown callers cost nothing."""
        if not client_id or client_id not in self._clients:
            log.warning("request from an unknown client", extra={"clientId": logged_id(client_id)})
            raise SignatureError(UNKNOWN_CLIENT, "X-Client-Id is missing or not a known client")
        return client_id

    def verify(
        self,
        client_id: str,
        *,
        timestamp: str | None,
        signature: str | None,
        method: str,
        path_with_query: str,
        body: bytes,
    ) -> None:
        try:
            verify_request(
                self._clients[client_id],
                timestamp=timestamp,
                signature=signature,
                method=method,
                path_with_query=path_with_query,
                body=body,
                now=self._clock(),
                tolerance_s=self._tolerance_s,
            )
        except SignatureError as exc:
            # Only the client and the reason: never the secrets, the signature or the body.
            log.warning("request signature rejected", extra={"clientId": logged_id(client_id), "code": exc.code})
            raise
