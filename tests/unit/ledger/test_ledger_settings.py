from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub_common.operator import OperatorSettings
from hub_ledger.settings import LedgerSettings
from mock_operator.settings import MockOperatorSettings


def test_ledger_refuses_to_start_without_the_operator_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_OPERATOR__SECRET", raising=False)
    with pytest.raises(ValidationError, match="LEDGER_OPERATOR__SECRET"):
        LedgerSettings()
    monkeypatch.setenv("LEDGER_OPERATOR__SECRET", "s3cret")
    assert LedgerSettings().operator.secret.get_secret_value() == "s3cret"


def test_ledger_settings_accept_an_explicit_operator_block() -> None:
    settings = LedgerSettings(operator=OperatorSettings(secret="x"))
    assert settings.operator.rate_per_minute == 60


def test_mock_operator_refuses_an_empty_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_OPERATOR_SECRET", "")
    with pytest.raises(ValidationError, match="must not be empty"):
        MockOperatorSettings()


def test_ledger_refuses_a_lease_too_short_to_cover_an_operator_call() -> None:
    operator = OperatorSettings(secret="x", timeout_s=5.0)
    with pytest.raises(ValidationError, match="lease_ttl_s"):
        LedgerSettings(operator=operator, lease_ttl_s=11.9)
    assert LedgerSettings(operator=operator, lease_ttl_s=12.0).lease_ttl_s == 12.0
