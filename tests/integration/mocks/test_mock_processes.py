"""The mocks' real entry points: they start, serve, and stop cleanly on SIGTERM; bad settings exit 2."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp
import pytest

from hub_devstack.procs import free_port

STARTUP_ATTEMPTS = 100


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        for _ in range(STARTUP_ATTEMPTS):
            try:
                async with http.get(f"{url}/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never became ready")


@pytest.mark.parametrize(
    ("module", "env"),
    [
        ("mock_operator", {"MOCK_OPERATOR_SECRET": "s", "MOCK_OPERATOR_PORT": "{port}"}),
        ("mock_rgs", {"MOCK_RGS_SECRETS": '["s"]', "MOCK_RGS_PORT": "{port}"}),
    ],
)
async def test_serves_then_stops_gracefully_on_sigterm(module: str, env: dict[str, str]) -> None:
    port = free_port()
    environment = os.environ | {k: v.format(port=port) for k, v in env.items()}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env=environment, stderr=asyncio.subprocess.PIPE
    )
    try:
        await wait_ready(f"http://127.0.0.1:{port}")
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, stderr.decode(errors="replace")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest.mark.parametrize("module", ["mock_operator", "mock_rgs"])
async def test_missing_secret_exits_2_with_a_clear_message(module: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_OPERATOR_", "MOCK_RGS_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, env=environment, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 2
    assert b"invalid setting secret" in stderr
