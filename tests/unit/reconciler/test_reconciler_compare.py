from __future__ import annotations

import pytest

from hub_reconciler.compare import Finding, compare, evaluate, is_due, is_expired, one_sided
from hub_reconciler.models import Facts, JoinEntry, MismatchKind


def facts(status: str = "COMPLETED", amount: int = 250, currency: str = "EUR") -> Facts:
    return Facts(status=status, amount_cents=amount, currency=currency)


def kinds(found: list[Finding]) -> set[MismatchKind]:
    return {f.kind for f in found}


def test_identical_completed_sides_match() -> None:
    assert compare(facts(), facts()) == []


def test_amount_and_currency_differences_are_separate_findings() -> None:
    found = compare(facts(amount=250), facts(amount=2500, currency="USD"))
    assert kinds(found) == {MismatchKind.AMOUNT_MISMATCH, MismatchKind.CURRENCY_MISMATCH}
    amount = next(f for f in found if f.kind is MismatchKind.AMOUNT_MISMATCH)
    assert "250" in amount.detail and "2500" in amount.detail


@pytest.mark.parametrize("hub_status", ["REJECTED", "FAILED"])
def test_hub_not_completed_but_operator_has_record_is_status_mismatch(hub_status: str) -> None:
    assert kinds(compare(facts(status=hub_status), facts())) == {MismatchKind.STATUS_MISMATCH}


def test_operator_record_not_completed_is_status_mismatch() -> None:
    assert kinds(compare(facts(), facts(status="REVERSED"))) == {MismatchKind.STATUS_MISMATCH}


def test_one_sided_rules() -> None:
    assert kinds(one_sided(facts(), None)) == {MismatchKind.MISSING_IN_OPERATOR}
    assert kinds(one_sided(None, facts())) == {MismatchKind.MISSING_IN_HUB}
    # The operator never seeing a rejected or failed transaction is the consistent outcome.
    assert one_sided(facts(status="REJECTED"), None) == []
    assert one_sided(facts(status="FAILED"), None) == []


def test_one_sided_entry_waits_for_the_grace_window() -> None:
    entry = JoinEntry(hub=facts(), first_seen_at=1000.0)
    assert evaluate(entry, now=1000.0 + 599, grace_s=600) == []
    assert not is_due(entry, now=1000.0 + 599, grace_s=600)
    assert kinds(evaluate(entry, now=1000.0 + 600, grace_s=600)) == {MismatchKind.MISSING_IN_OPERATOR}
    assert is_due(entry, now=1000.0 + 600, grace_s=600)


def test_both_sides_are_compared_without_waiting() -> None:
    entry = JoinEntry(hub=facts(amount=1), operator=facts(amount=2), first_seen_at=1000.0)
    assert kinds(evaluate(entry, now=1000.0, grace_s=600)) == {MismatchKind.AMOUNT_MISMATCH}


def test_reported_kinds_are_not_found_again() -> None:
    entry = JoinEntry(hub=facts(), first_seen_at=0.0, reported=(MismatchKind.MISSING_IN_OPERATOR,))
    assert evaluate(entry, now=10_000.0, grace_s=600) == []
    assert not is_due(entry, now=10_000.0, grace_s=600)


def test_expiry_counts_from_settlement_or_first_sight() -> None:
    settled = JoinEntry(hub=facts(), operator=facts(), first_seen_at=0.0, settled_at=100.0)
    assert not is_expired(settled, now=100.0 + 99, retention_s=100)
    assert is_expired(settled, now=100.0 + 100, retention_s=100)
    lonely = JoinEntry(hub=facts(status="REJECTED"), first_seen_at=0.0)
    assert is_expired(lonely, now=100.0, retention_s=100)
