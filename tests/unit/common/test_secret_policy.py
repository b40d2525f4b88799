"""The secret policy: weak secrets and plain-http webhook URLs stop every service outside development."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest
from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from hub_common.secret_policy import DEV_MODE_ENV, dev_mode, policy_problems, secret_problem
from hub_common.service import EXIT_BAD_SETTINGS, load_settings
from hub_dispatcher.settings import DispatcherSettings
from hub_gateway.settings import GatewaySettings
from hub_ledger.settings import LedgerSettings
from hub_reconciler.settings import ReconcilerSettings
from hubctl.context import HubctlSettings
from mock_operator.settings import MockOperatorSettings
from mock_rgs.settings import MockRgsSettings

STRONG = secrets.token_urlsafe(32)
OTHER_STRONG = secrets.token_urlsafe(32)
WEAK = [
    "", "change-me", "change-me-operator-secret-0123456789abcdef", "x" * 40, "short-but-random-Zk3",
    "my test key 0123456789 abcdefghijkl",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _production(monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy is what production sees: the suite-wide development switch is off here."""
    monkeypatch.delenv(DEV_MODE_ENV, raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "is empty"),
        ("abc", "is shorter than 32 bytes"),
        ("change-me-rgs-secret-0123456789abcdefgh", "looks like a placeholder"),
        ("CHANGEME0123456789abcdefghijklmnopq", "looks like a placeholder"),
        ("supersecretvalue-0123456789abcdefghij", "looks like a placeholder"),
        ("test_key_Zk3Lp9Qw2Xv8Rt5Yn1Mb7Hc4Jd6Fg0", "looks like a placeholder"),
        ("ab" * 20, "repeats too few characters to be random"),
    ],
)
def test_secret_problem_names_the_reason(value: str, problem: str) -> None:
    assert secret_problem(value) == problem


def test_random_tokens_are_accepted() -> None:
    assert [t for t in (secrets.token_urlsafe(32) for _ in range(200)) if secret_problem(t)] == []


def test_dev_mode_reads_the_one_switch() -> None:
    assert dev_mode({DEV_MODE_ENV: "1"}) and dev_mode({DEV_MODE_ENV: "true"})
    assert not dev_mode({}) and not dev_mode({DEV_MODE_ENV: "0"}) and not dev_mode({DEV_MODE_ENV: ""})


def _gateway(secret: str) -> BaseSettings:
    return GatewaySettings(clients={"rgs-a": [SecretStr(secret)]}, operator={"secret": STRONG})


def _ledger(secret: str) -> BaseSettings:
    return LedgerSettings(operator={"secret": secret or "x"})


def _reconciler(secret: str) -> BaseSettings:
    return ReconcilerSettings(operator={"secret": secret})


def _dispatcher(secret: str) -> BaseSettings:
    return DispatcherSettings(endpoints={"rgs-a": {"url": "https://rgs.example/hooks", "secrets": [secret]}})


def _dispatcher_rotation(secret: str) -> BaseSettings:
    return DispatcherSettings(endpoints={"rgs-a": {"url": "https://rgs.example/hooks", "secrets": [STRONG, secret]}})


def _mock_operator(secret: str) -> BaseSettings:
    return MockOperatorSettings(secret=SecretStr(secret or "x"))


def _mock_rgs(secret: str) -> BaseSettings:
    return MockRgsSettings(secrets=[SecretStr(secret)])


def _database(secret: str) -> BaseSettings:
    url = f"postgresql://hub_ledger:{secret}@db:5432/hub" if secret else "postgresql://hub_ledger:@db:5432/hub"
    return LedgerSettings(operator={"secret": STRONG}, database={"url": SecretStr(url)})


def _kafka(secret: str) -> BaseSettings:
    kafka = {"security_protocol": "SASL_SSL", "sasl_username": "hub-ledger", "sasl_password": secret or "x"}
    return LedgerSettings(operator={"secret": STRONG}, kafka=kafka)


def _hubctl(secret: str) -> BaseSettings:
    return HubctlSettings(operator_secret=SecretStr(secret or "x"))


BUILDERS: list[Callable[[str], BaseSettings]] = [
    _gateway, _ledger, _reconciler, _dispatcher, _dispatcher_rotation, _mock_operator, _mock_rgs, _database,
    _kafka, _hubctl,
]  # fmt: skip


@pytest.mark.parametrize("build", BUILDERS)
@pytest.mark.parametrize("weak", WEAK)
def test_every_settings_class_refuses_weak_secrets_without_echoing_them(
    build: Callable[[str], BaseSettings], weak: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        build(weak)
    message = caught.value.errors(include_input=False)[0]["msg"]
    # An empty value may be refused earlier by a field's own check (e.g. a client without a secret).
    assert "HUB_DEV_MODE=1" in message or not weak
    if len(weak) >= 8:
        assert weak not in message


@pytest.mark.parametrize("build", BUILDERS)
def test_strong_secrets_start(build: Callable[[str], BaseSettings]) -> None:
    assert build(OTHER_STRONG).dev_mode is False  # type: ignore[attr-defined]


@pytest.mark.parametrize("build", BUILDERS)
def test_development_switch_allows_placeholders(
    build: Callable[[str], BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEV_MODE_ENV, "1")
    assert build("change-me").dev_mode is True  # type: ignore[attr-defined]


def test_gateway_needs_its_operator_secret_for_balance_reads() -> None:
    with pytest.raises(ValidationError, match=r"operator\.secret is empty"):
        GatewaySettings(clients={"rgs-a": [SecretStr(STRONG)]})


def test_hubctl_may_leave_the_operator_secret_unset() -> None:
    assert HubctlSettings().operator_secret.get_secret_value() == ""


def test_database_url_without_password_is_not_judged() -> None:
    settings = LedgerSettings(
        operator={"secret": STRONG}, database={"url": SecretStr("postgresql://hub_ledger@db/hub")}
    )
    assert settings.database.url.get_secret_value().startswith("postgresql://hub_ledger@")


@pytest.mark.parametrize("url", ["http://rgs.example/hooks", "http://127.0.0.1:3002/webhooks"])
def test_webhook_urls_must_be_https(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoints = {"rgs-a": {"url": url, "secrets": [STRONG]}}
    with pytest.raises(ValidationError, match=r"endpoints\.rgs-a\.url must be an https URL"):
        DispatcherSettings(endpoints=endpoints)
    monkeypatch.setenv(DEV_MODE_ENV, "1")
    assert DispatcherSettings(endpoints=endpoints).endpoints["rgs-a"].url == url


def test_service_start_names_the_weak_setting_and_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LEDGER_OPERATOR__SECRET", "change-me-operator-secret")
    with pytest.raises(SystemExit) as exited:
        load_settings("ledger", LedgerSettings)
    assert exited.value.code == EXIT_BAD_SETTINGS
    err = capsys.readouterr().err
    assert err.startswith("ledger: refusing to start: ")
    assert "operator.secret is shorter than 32 bytes" in err
    assert "change-me-operator-secret" not in err


class _Nested(BaseModel):
    token: SecretStr


def test_secrets_are_found_wherever_they_nest() -> None:
    class Holder(BaseModel):
        by_name: dict[str, list[_Nested]]

    holder = Holder(by_name={"a": [_Nested(token=SecretStr(STRONG)), _Nested(token=SecretStr("pw"))]})
    assert policy_problems(holder) == ["by_name.a[1].token is shorter than 32 bytes"]
