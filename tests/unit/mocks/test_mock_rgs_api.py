"""The mock RGS over real HTTP: signature checks, recording, behaviours, admin."""

from __future__ import annotations

import time
import uuid
from typing import Any

import aiohttp
import orjson
import pytest
from pydantic import SecretStr

from hub_common.signing import webhook_headers
from mock_rgs.admin_client import AdminClientError, RgsAdminClient
from mock_rgs.models import Behaviour


async def deliver(
    http: aiohttp.ClientSession,
    rgs_url: str,
    secrets: list[SecretStr],
    *,
    event_id: str | None = None,
    attempt: int = 1,
    replay: bool = False,
    tamper: bool = False,
    now: float | None = None,
) -> int:
    event_id = event_id or str(uuid.uuid4())
    body = orjson.dumps({"eventId": event_id, "eventType": "transaction.completed", "occurredAt": "x", "data": {}})
    headers = webhook_headers(secrets, event_id, body, now=now)
    headers |= {"X-Attempt": str(attempt), "X-Correlation-ID": "corr-1", "Content-Type": "application/json"}
    if replay:
        headers["X-Replay"] = "true"
    async with http.post(f"{rgs_url}/webhooks", data=body + (b" " if tamper else b""), headers=headers) as response:
        return response.status


async def test_verified_delivery_is_recorded(
    http: aiohttp.ClientSession, rgs_url: str, rgs_admin: RgsAdminClient, rgs_secrets: list[SecretStr]
) -> None:
    assert await deliver(http, rgs_url, rgs_secrets, event_id="e-1", attempt=2, replay=True) == 200
    seen = await rgs_admin.webhooks()
    assert (seen.unique_events, seen.duplicates, seen.invalid_signatures) == (1, 0, 0)
    [record] = seen.received
    assert (record.event_id, record.event_type, record.attempt, record.replay) == (
        "e-1",
        "transaction.completed",
        2,
        True,
    )
    assert record.verified
    assert record.status == 200
    assert record.body["eventId"] == "e-1"
    assert record.headers["X-Correlation-ID"] == "corr-1"


async def test_one_rotated_secret_is_enough(
    http: aiohttp.ClientSession, rgs_url: str, rgs_secrets: list[SecretStr]
) -> None:
    assert await deliver(http, rgs_url, [rgs_secrets[1]]) == 200
    assert await deliver(http, rgs_url, [SecretStr("unrelated"), rgs_secrets[0]]) == 200


@pytest.mark.parametrize("case", ["tampered", "wrong-secret", "stale", "no-standard-headers"])
async def test_bad_signatures_are_401_and_counted(
    http: aiohttp.ClientSession,
    rgs_url: str,
    rgs_admin: RgsAdminClient,
    rgs_secrets: list[SecretStr],
    case: str,
) -> None:
    if case == "tampered":
        status = await deliver(http, rgs_url, rgs_secrets, tamper=True)
    elif case == "wrong-secret":
        status = await deliver(http, rgs_url, [SecretStr("nope")])
    elif case == "stale":
        status = await deliver(http, rgs_url, rgs_secrets, now=time.time() - 301)
    else:
        body = b'{"eventId": "e-1"}'
        headers = webhook_headers(rgs_secrets, "e-1", body)
        del headers["webhook-signature"]
        async with http.post(f"{rgs_url}/webhooks", data=body, headers=headers) as response:
            status = response.status
    assert status == 401
    seen = await rgs_admin.webhooks()
    assert (seen.invalid_signatures, seen.unique_events) == (1, 0)
    assert not seen.received[0].verified


async def test_duplicate_acknowledged_deliveries_are_counted(
    http: aiohttp.ClientSession, rgs_url: str, rgs_admin: RgsAdminClient, rgs_secrets: list[SecretStr]
) -> None:
    for attempt in (1, 2):
        assert await deliver(http, rgs_url, rgs_secrets, event_id="e-1", attempt=attempt) == 200
    await deliver(http, rgs_url, rgs_secrets, event_id="e-2")
    seen = await rgs_admin.webhooks()
    assert (seen.unique_events, seen.duplicates) == (2, 1)
    assert len((await rgs_admin.webhooks(event_id="e-1")).received) == 2


async def test_status_behaviour_then_recovery(
    http: aiohttp.ClientSession, rgs_url: str, rgs_admin: RgsAdminClient, rgs_secrets: list[SecretStr]
) -> None:
    await rgs_admin.set_behaviour(Behaviour(status=500, count=3))
    statuses = [await deliver(http, rgs_url, rgs_secrets, event_id="e-1", attempt=n) for n in range(1, 5)]
    assert statuses == [500, 500, 500, 200]
    seen = await rgs_admin.webhooks()
    assert (seen.duplicates, seen.acknowledged_events) == (0, 1)
    assert [d.status for d in seen.received] == [500, 500, 500, 200]


async def test_fail_rate_and_delay(
    http: aiohttp.ClientSession, rgs_url: str, rgs_admin: RgsAdminClient, rgs_secrets: list[SecretStr]
) -> None:
    await rgs_admin.set_behaviour(Behaviour(fail_rate=1.0, fail_status=503, delay_ms=10))
    assert await deliver(http, rgs_url, rgs_secrets) == 503
    await rgs_admin.set_behaviour(Behaviour(fail_rate=0.5, seed=11))
    first = [await deliver(http, rgs_url, rgs_secrets) for _ in range(12)]
    await rgs_admin.set_behaviour(Behaviour(fail_rate=0.5, seed=11))
    assert [await deliver(http, rgs_url, rgs_secrets) for _ in range(12)] == first
    assert set(first) == {200, 500}
    await rgs_admin.clear_behaviour()
    assert await deliver(http, rgs_url, rgs_secrets) == 200


async def test_delay_outlasts_a_short_client_timeout(
    rgs_url: str, rgs_admin: RgsAdminClient, rgs_secrets: list[SecretStr]
) -> None:
    await rgs_admin.set_behaviour(Behaviour(delay_ms=500))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.05)) as short:
        with pytest.raises(TimeoutError):
            await deliver(short, rgs_url, rgs_secrets)


async def test_behaviour_admin_validation_and_reset(
    http: aiohttp.ClientSession, rgs_url: str, rgs_admin: RgsAdminClient, rgs_secrets: list[SecretStr]
) -> None:
    for bad in ({"status": 99}, {"failRate": 1.5}, {"other": 1}):
        async with http.post(f"{rgs_url}/_admin/behaviour", json=bad) as response:
            assert response.status == 400
    await rgs_admin.set_behaviour(Behaviour(status=500))
    async with http.get(f"{rgs_url}/_admin/behaviour") as response:
        body: dict[str, Any] = await response.json()
    assert body["behaviour"]["status"] == 500
    await deliver(http, rgs_url, rgs_secrets)
    await rgs_admin.reset()
    assert (await rgs_admin.webhooks()).received == []
    assert await deliver(http, rgs_url, rgs_secrets) == 200


async def test_admin_client_reports_errors(http: aiohttp.ClientSession, rgs_url: str) -> None:
    client = RgsAdminClient(http, rgs_url + "/nowhere")
    with pytest.raises(AdminClientError) as info:
        await client.reset()
    assert info.value.status == 404


async def test_ops_routes(http: aiohttp.ClientSession, rgs_url: str) -> None:
    async with http.get(f"{rgs_url}/health") as response:
        assert (await response.json())["service"] == "mock-rgs"
    async with http.get(f"{rgs_url}/ready") as response:
        assert response.status == 200
