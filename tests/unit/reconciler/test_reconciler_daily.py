from __future__ import annotations

from datetime import UTC, datetime

from hub_reconciler.daily import next_run
from hub_reconciler.models import MismatchKind, mismatch_event_id


def test_next_run_is_today_when_still_ahead() -> None:
    now = datetime(2024, 1, 15, 0, 10, tzinfo=UTC)
    assert next_run(now, "00:30") == datetime(2024, 1, 15, 0, 30, tzinfo=UTC)


def test_next_run_rolls_to_tomorrow_at_and_after_the_time() -> None:
    assert next_run(datetime(2024, 1, 15, 0, 30, tzinfo=UTC), "00:30") == datetime(2024, 1, 16, 0, 30, tzinfo=UTC)
    assert next_run(datetime(2024, 1, 31, 23, 0, tzinfo=UTC), "00:30") == datetime(2024, 2, 1, 0, 30, tzinfo=UTC)


def test_mismatch_event_id_is_stable_per_ref_and_kind() -> None:
    a = mismatch_event_id("bet-1", MismatchKind.AMOUNT_MISMATCH)
    assert a == mismatch_event_id("bet-1", MismatchKind.AMOUNT_MISMATCH)
    assert a != mismatch_event_id("bet-1", MismatchKind.CURRENCY_MISMATCH)
    assert a != mismatch_event_id("bet-2", MismatchKind.AMOUNT_MISMATCH)
