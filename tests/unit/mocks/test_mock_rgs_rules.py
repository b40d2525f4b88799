from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from mock_rgs.behaviour import Responder
from mock_rgs.deliveries import DeliveryLog
from mock_rgs.models import Behaviour, Delivery
from mock_rgs.settings import MockRgsSettings


def delivery(event_id: str | None, status: int = 200, *, verified: bool = True) -> Delivery:
    return Delivery(
        event_id=event_id,
        event_type="transaction.completed",
        attempt=1,
        replay=False,
        verified=verified,
        status=status,
        headers={},
        body={},
        received_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_duplicates_count_only_events_acknowledged_before() -> None:
    log = DeliveryLog(max_recorded=100)
    log.record(delivery("e-1", 500))  # refused: the retry that follows is no duplicate
    log.record(delivery("e-1", 200))
    log.record(delivery("e-1", 200))  # a second acknowledged delivery: duplicate
    log.record(delivery("e-2", 200))
    log.record(delivery("e-2", 401, verified=False))
    summary = log.snapshot()
    assert (summary.unique_events, summary.acknowledged_events) == (2, 2)
    assert (summary.duplicates, summary.invalid_signatures) == (1, 1)
    assert len(summary.received) == 5
    assert [d.status for d in log.snapshot("e-1").received] == [500, 200, 200]


def test_log_keeps_only_the_newest_deliveries_but_all_counts() -> None:
    log = DeliveryLog(max_recorded=2)
    for i in range(3):
        log.record(delivery(f"e-{i}"))
    summary = log.snapshot()
    assert [d.event_id for d in summary.received] == ["e-1", "e-2"]
    assert summary.unique_events == 3
    log.reset()
    assert log.snapshot().received == []


def test_status_with_count_answers_that_many_then_200() -> None:
    responder = Responder(default_seed=None)
    responder.set(Behaviour(status=500, count=2, delay_ms=5))
    answers = [responder.next_answer() for _ in range(3)]
    assert [a.status for a in answers] == [500, 500, 200]
    assert answers[0].delay_s == pytest.approx(0.005)
    assert responder.remaining == 0


def test_status_without_count_is_permanent_until_cleared() -> None:
    responder = Responder(default_seed=None)
    responder.set(Behaviour(status=410))
    assert {responder.next_answer().status for _ in range(5)} == {410}
    responder.clear()
    assert responder.next_answer().status == 200


def test_fail_rate_is_reproducible_with_a_seed() -> None:
    responder = Responder(default_seed=None)
    responder.set(Behaviour(fail_rate=0.5, fail_status=503, seed=3))
    first = [responder.next_answer().status for _ in range(30)]
    responder.set(Behaviour(fail_rate=0.5, fail_status=503, seed=3))
    assert [responder.next_answer().status for _ in range(30)] == first
    assert set(first) == {200, 503}


def test_secrets_setting_accepts_json_or_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOCK_RGS_SECRETS", '["a", "b"]')
    assert [s.get_secret_value() for s in MockRgsSettings().secrets] == ["a", "b"]
    monkeypatch.setenv("MOCK_RGS_SECRETS", "a, b")
    assert [s.get_secret_value() for s in MockRgsSettings().secrets] == ["a", "b"]
    monkeypatch.setenv("MOCK_RGS_SECRETS", "[]")
    with pytest.raises(ValidationError):
        MockRgsSettings()
