from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub_dispatcher.settings import DEFAULT_RETRY_SCHEDULE_MS, DispatcherSettings


def test_endpoints_and_schedule_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "DISPATCHER_ENDPOINTS",
        '{"rgs-demo": {"url": "http://127.0.0.1:3002/webhooks", "secrets": "wh-1x9q,wh-2k7z", "timeout_s": 2}}',
    )
    monkeypatch.setenv("DISPATCHER_RETRY_SCHEDULE_MS", "[10, 20]")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    settings = DispatcherSettings()
    endpoint = settings.endpoints["rgs-demo"]
    assert [s.get_secret_value() for s in endpoint.secrets] == ["wh-1x9q", "wh-2k7z"]
    assert endpoint.timeout_s == 2
    assert settings.retry_schedule_ms == [10, 20]
    assert settings.max_attempts == 3
    assert settings.port == 3011
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert "wh-1x9q" not in repr(settings)


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPATCHER_RETRY_SCHEDULE_MS", raising=False)
    settings = DispatcherSettings()
    assert settings.retry_schedule_ms == DEFAULT_RETRY_SCHEDULE_MS
    assert settings.timeout_s == 10
    assert settings.retry_jitter == 0.2


@pytest.mark.parametrize(
    "env",
    [
        {"DISPATCHER_RETRY_SCHEDULE_MS": "[]"},
        {"DISPATCHER_RETRY_SCHEDULE_MS": "[100, 0]"},
        {"DISPATCHER_ENDPOINTS": '{"c": {"url": "ftp://x", "secrets": ["s"]}}'},
        {"DISPATCHER_ENDPOINTS": '{"c": {"url": "http://x", "secrets": []}}'},
    ],
)
def test_invalid_settings_fail_at_start(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        DispatcherSettings()
