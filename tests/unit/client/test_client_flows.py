"""The client's behaviour on scripted gateway answers (httpx.MockTransport: no network): retries with the same
Idempotency-Key and a fresh signature, Retry-After, the 202 follow-up, typed errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

import hub_client
from hub_client import AsyncHubClient, FollowPolicy, HubClient, RetryPolicy, bet, refund
from hub_common.schemas import ErrorCode
from hub_common.signing import verify_request

URL = "http://gateway.test"
SECRET = "s3cret"
FAST = RetryPolicy(attempts=4, backoff_s=0.001, max_backoff_s=0.002, max_retry_after_s=0.5)


def tx(status: str, ref_id: str = "bet-1", **extra: Any) -> dict[str, Any]:
    return {
        "transactionId": "t-1",
        "refId": ref_id,
        "type": "BET",
        "playerId": "p-1",
        "amountCents": 250,
        "currency": "EUR",
        "status": status,
        "createdAt": "2024-01-15T10:00:00Z",
        "updatedAt": "2024-01-15T10:00:00Z",
        **extra,
    }


def error(code: str, *, retryable: bool = False, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": code.lower(), "retryable": retryable, "correlationId": "c", **extra}}


Answer = tuple[int, dict[str, Any] | str, dict[str, str]]


@dataclass
class Script:
    """Answers in order; records every request after checking its signature as the gateway does."""

    answers: list[Answer | Exception]
    seen: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        verify_request(
            [SecretStr(SECRET)],
            timestamp=request.headers["X-Timestamp"],
            signature=request.headers["X-Signature"],
            method=request.method,
            path_with_query=request.url.raw_path.decode(),
            body=request.content,
        )
        self.seen.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = answer
        content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        return httpx.Response(status, content=content, headers=headers)


@pytest.fixture
def scripted() -> Iterator[Callable[..., tuple[HubClient, Script]]]:
    clients: list[HubClient] = []

    def make(*answers: Answer | Exception, follow: FollowPolicy | None = None) -> tuple[HubClient, Script]:
        script = Script(list(answers))
        http = httpx.Client(transport=httpx.MockTransport(script))
        client = HubClient(URL, "rgs-1", SECRET, retry=FAST, follow=follow, http=http)
        clients.append(client)
        return client, script

    yield make
    for client in clients:
        client.close()


def test_a_completed_bet(scripted: Callable[..., tuple[HubClient, Script]]) -> None:
    client, script = scripted((201, tx("COMPLETED", balanceCents=9750), {}))
    done = client.submit(bet("bet-1", "p-1", 250, "EUR", round_id="r-1"))
    assert (done.status, done.balance_cents, done.created_at is not None) == ("COMPLETED", 9750, True)
    (request,) = script.seen
    assert request.headers["Idempotency-Key"] == "bet-1"  # the refId, unless one is given
    assert json.loads(request.content) == {
        "refId": "bet-1", "type": "BET", "playerId": "p-1", "amountCents": 250, "currency": "EUR",
        "roundId": "r-1", "gameId": None, "originalRefId": None, "roundClosed": False, "metadata": {},
    }  # fmt: skip


@pytest.mark.parametrize(
    "temporary",
    [
        (429, error("RATE_LIMITED", retryable=True), {"Retry-After": "0"}),
        (503, error("SERVICE_UNAVAILABLE", retryable=True), {"Retry-After": "0"}),
        (409, error("REQUEST_IN_PROGRESS", retryable=True), {"Retry-After": "0"}),
        (500, error("INTERNAL_ERROR", retryable=True), {}),
        (502, "<html>bad gateway</html>", {}),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ],
    ids=["429", "503", "409", "500", "proxy-502", "connect", "timeout"],
)
def test_temporary_failures_are_retried_with_the_same_key_and_body(
    scripted: Callable[..., tuple[HubClient, Script]], temporary: Answer | Exception
) -> None:
    client, script = scripted(temporary, temporary, (201, tx("COMPLETED"), {}))
    assert client.submit(bet("bet-1", "p-1", 250, "EUR"), idempotency_key="k-1").status == "COMPLETED"
    assert [r.headers["Idempotency-Key"] for r in script.seen] == ["k-1"] * 3
    assert len({r.content for r in script.seen}) == 1


def test_retries_end_with_the_typed_error(scripted: Callable[..., tuple[HubClient, Script]]) -> None:
    busy = (429, error("RATE_LIMITED", retryable=True), {"Retry-After": "0"})
    client, script = scripted(busy, busy, busy, busy)
    with pytest.raises(hub_client.RateLimited) as info:
        client.submit(bet("bet-1", "p-1", 250, "EUR"))
    assert len(script.seen) == FAST.attempts
    assert (info.value.status, info.value.retry_after_s, info.value.retryable) == (429, 0.0, True)


def test_a_retry_after_beyond_the_policy_goes_to_the_caller(scripted: Callable[..., tuple[HubClient, Script]]) -> None:
    client, script = scripted((503, error("SERVICE_UNAVAILABLE", retryable=True), {"Retry-After": "30"}))
    with pytest.raises(hub_client.ServiceUnavailable):
        client.submit(bet("bet-1", "p-1", 250, "EUR"))
    assert len(script.seen) == 1


def test_no_answer_at_all_is_a_connection_error(scripted: Callable[..., tuple[HubClient, Script]]) -> None:
    client, _ = scripted(*[httpx.ConnectError("refused")] * FAST.attempts)
    with pytest.raises(hub_client.HubConnectionError, match="4 attempts"):
        client.get("bet-1")


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (422, "INSUFFICIENT_FUNDS", hub_client.InsufficientFunds),
        (404, "PLAYER_NOT_FOUND", hub_client.PlayerNotFound),
        (409, "IDEMPOTENCY_KEY_REUSED", hub_client.IdempotencyKeyReused),
        (401, "STALE_TIMESTAMP", hub_client.StaleTimestamp),
        (400, "INVALID_REQUEST", hub_client.InvalidRequest),
        (502, "OPERATOR_UNAVAILABLE", hub_client.OperatorUnavailable),
    ],
)
def test_final_answers_raise_their_typed_error_at_once(
    scripted: Callable[..., tuple[HubClient, Script]], status: int, code: str, cls: type[hub_client.ApiError]
) -> None:
    client, script = scripted((status, error(code, balanceCents=120), {}))
    with pytest.raises(cls) as info:
        client.submit(bet("bet-1", "p-1", 250, "EUR"))
    assert len(script.seen) == 1
    assert (info.value.code, info.value.status, info.value.correlation_id) == (code, status, "c")
    assert info.value.balance_cents == 120


def test_every_contract_code_has_its_own_error_class() -> None:
    assert set(hub_client.errors.ERRORS) == {c.value for c in ErrorCode}
    retry_classes = {c: hub_client.errors.ERRORS[c.value] for c in ErrorCode}
    assert issubclass(retry_classes[ErrorCode.RATE_LIMITED], hub_client.TemporaryError)
    assert issubclass(retry_classes[ErrorCode.INSUFFICIENT_FUNDS], hub_client.TransactionRejected)
    assert issubclass(retry_classes[ErrorCode.INVALID_SIGNATURE], hub_client.AuthenticationError)


def test_202_is_followed_to_completed(scripted: Callable[..., tuple[HubClient, Script]]) -> None:
    follow = FollowPolicy(timeout_s=5, interval_s=0.001, max_interval_s=0.002)
    client, script = scripted(
        (202, tx("PENDING", ref_id="bet/1"), {"Location": "/v1/transactions/bet%2F1"}),
        (200, tx("PROCESSING", ref_id="bet/1"), {}),
        (200, tx("COMPLETED", ref_id="bet/1", balanceCents=10), {}),
        follow=follow,
    )
    assert client.submit(bet("bet/1", "p-1", 250, "EUR")).balance_cents == 10
    assert [(r.method, r.url.raw_path) for r in script.seen] == [
        ("POST", b"/v1/transactions"),
        ("GET", b"/v1/transactions/bet%2F1"),
        ("GET", b"/v1/transactions/bet%2F1"),
    ]


def test_202_that_ends_rejected_raises_the_outcomes_code(scripted: Callable[..., tuple[HubClient, Script]]) -> None:
    follow = FollowPolicy(timeout_s=5, interval_s=0.001)
    client, script = scripted(
        (202, tx("PENDING"), {"Location": "/v1/transactions/bet-1"}),
        (200, tx("REJECTED", reason="insufficient funds"), {}),
        (422, error("INSUFFICIENT_FUNDS", balanceCents=5), {"Idempotent-Replayed": "true"}),
        follow=follow,
    )
    with pytest.raises(hub_client.InsufficientFunds) as info:
        client.submit(refund("bet-1", "bet-0", "p-1", 250, "EUR"))
    assert info.value.balance_cents == 5
    post, _, replay = script.seen
    assert (replay.method, replay.content, replay.headers["Idempotency-Key"]) == (
        "POST",
        post.content,
        post.headers["Idempotency-Key"],
    )


def test_202_not_final_in_time_is_still_pending(scripted: Callable[..., tuple[HubClient, Script]]) -> None:
    follow = FollowPolicy(timeout_s=0.05, interval_s=0.02, max_interval_s=0.02)
    pending: Answer = (200, tx("PENDING"), {})
    client, _ = scripted((202, tx("PENDING"), {"Location": "/v1/transactions/bet-1"}), *[pending] * 20, follow=follow)
    with pytest.raises(hub_client.StillPending) as info:
        client.submit(bet("bet-1", "p-1", 250, "EUR"))
    assert info.value.transaction.status == "PENDING"


def test_without_follow_the_pending_transaction_is_returned(scripted: Callable[..., tuple[HubClient, Script]]) -> None:
    client, script = scripted((202, tx("PENDING"), {"Location": "/v1/transactions/bet-1"}))
    assert client.submit(bet("bet-1", "p-1", 250, "EUR"), follow=False).status == "PENDING"
    assert len(script.seen) == 1


def test_balance_and_from_env(scripted: Callable[..., tuple[HubClient, Script]]) -> None:
    client, script = scripted((200, {"playerId": "p 1", "balanceCents": 5, "currency": "EUR"}, {}))
    assert client.balance("p 1") == hub_client.Balance("p 1", 5, "EUR")
    assert script.seen[0].url.raw_path == b"/v1/players/p%201/balance"
    with pytest.raises(ValueError, match="HUB_CLIENT_SECRET"):
        HubClient.from_env({"HUB_URL": URL, "HUB_CLIENT_ID": "rgs-1"})


async def test_the_async_client_behaves_the_same() -> None:
    script = Script(
        [
            (503, error("SERVICE_UNAVAILABLE", retryable=True), {"Retry-After": "0"}),
            (202, tx("PENDING"), {"Location": "/v1/transactions/bet-1"}),
            (200, tx("COMPLETED"), {}),
        ]
    )
    http = httpx.AsyncClient(transport=httpx.MockTransport(script))
    follow = FollowPolicy(interval_s=0.001)
    async with AsyncHubClient(URL, "rgs-1", SECRET, retry=FAST, follow=follow, http=http) as client:
        assert (await client.submit(bet("bet-1", "p-1", 250, "EUR"))).status == "COMPLETED"
    await http.aclose()
    assert [r.method for r in script.seen] == ["POST", "POST", "GET"]


def test_202_that_ends_rejected_raises_from_the_resources_error_code(
    scripted: Callable[..., tuple[HubClient, Script]],
) -> None:
    follow = FollowPolicy(timeout_s=5, interval_s=0.001)
    expired = tx("REJECTED", reason="not sent within its useful life", errorCode="BET_EXPIRED")
    client, script = scripted(
        (202, tx("PENDING", predictedWaitS=0.0), {"Location": "/v1/transactions/bet-1", "Retry-After": "0"}),
        (200, expired, {}),
        follow=follow,
    )
    with pytest.raises(hub_client.BetExpired) as info:
        client.submit(bet("bet-1", "p-1", 250, "EUR"))
    assert (info.value.status, info.value.retryable) == (422, False)
    assert [r.method for r in script.seen] == ["POST", "GET"]  # no replay needed to learn the code


def test_a_predicted_wait_past_the_follow_timeout_is_still_pending_at_once(
    scripted: Callable[..., tuple[HubClient, Script]],
) -> None:
    follow = FollowPolicy(timeout_s=30, interval_s=0.001)
    pending = tx("PENDING", predictedWaitS=41.5)
    client, script = scripted(
        (202, pending, {"Location": "/v1/transactions/bet-1", "Retry-After": "42", "X-Predicted-Wait": "41.5"}),
        follow=follow,
    )
    with pytest.raises(hub_client.StillPending) as info:
        client.submit(bet("bet-1", "p-1", 250, "EUR"))
    assert info.value.transaction.predicted_wait_s == 41.5
    assert len(script.seen) == 1
