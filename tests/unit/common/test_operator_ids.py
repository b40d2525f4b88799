"""The operator id of a Hub transaction: `{clientId}:{refId}`, its cancel `cancel:{id}`, and the client id rule that
keeps both unambiguous."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from hub_common.operator import cancel_id, operator_id, operator_id_sql
from hub_common.operator.ids import command_operator_id, operator_id_expr
from hub_common.schemas import CLIENT_ID_PATTERN, TransactionCommand, client_id_problem
from hub_common.telemetry import logged_id
from hub_gateway.settings import GatewaySettings

client_ids = st.from_regex(CLIENT_ID_PATTERN, fullmatch=True).filter(lambda c: client_id_problem(c) is None)
ref_ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128)


def test_the_forms() -> None:
    assert operator_id("rgs-demo", "bet-123") == "rgs-demo:bet-123"
    assert cancel_id(operator_id("rgs-demo", "bet-123")) == "cancel:rgs-demo:bet-123"
    # A row from before the change keeps its bare refId; its cancel follows it.
    assert cancel_id("bet-123") == "cancel:bet-123"
    assert operator_id_sql("t") == "t.operator_id"
    # A command names the id its row got at admission; one of a release before migration 008 names none.
    assert command_operator_id("rgs-demo:bet-123", "bet-123") == "rgs-demo:bet-123"
    assert command_operator_id(None, "bet-123") == "bet-123"
    assert operator_id_expr("'rgs-demo'", "'r' || i") == "('rgs-demo' || ':' || 'r' || i)"


@given(client_ids, ref_ids, client_ids, ref_ids)
def test_two_transactions_never_share_an_id_and_no_transaction_looks_like_a_cancel(
    client_a: str, ref_a: str, client_b: str, ref_b: str
) -> None:
    a, b = operator_id(client_a, ref_a), operator_id(client_b, ref_b)
    assert (a == b) == ((client_a, ref_a) == (client_b, ref_b))
    assert a != cancel_id(b)
    assert len(cancel_id(a)) <= 255  # the operator's limit on an id


@pytest.mark.parametrize("client_id", ["rgs-demo", "rgs.demo_2", "A", "a" * 64])
def test_valid_client_ids(client_id: str) -> None:
    assert client_id_problem(client_id) is None


@pytest.mark.parametrize("client_id", ["", "rgs:demo", "cancel", "-rgs", "rgs demo", "a" * 65, "rgs/1", "é"])
def test_client_ids_that_would_make_ids_ambiguous_are_refused(client_id: str) -> None:
    assert client_id_problem(client_id) is not None
    with pytest.raises(ValidationError, match=r"client id .*: .*(a client id is|is reserved)"):
        GatewaySettings(clients={client_id: [SecretStr(secrets.token_urlsafe(32))]})
    with pytest.raises(ValidationError, match=r"a client id is|is reserved"):
        TransactionCommand(
            transaction_id="t",
            client_id=client_id,
            idempotency_key=None,
            request_hash="h",
            ref_id="r",
            type="BET",
            player_id="p",
            amount_cents=1,
            currency="EUR",
            admitted_at=datetime.now(UTC),
        )


def test_logged_ids_are_cut() -> None:
    assert logged_id("rgs-demo") == "rgs-demo"
    assert logged_id(None) is None
    assert logged_id("x" * 100) == "x" * 64 + "...(+36)"
