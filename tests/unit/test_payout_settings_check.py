"""``mappings check`` for payouts as deposits (design two-way 3.8): with payout deposits on, the
accounts a deposit posts to must exist, and money must land in and leave from the account the
deposit empties, or no deposit could equal the bank line."""

from __future__ import annotations

from typing import Any

import pytest

from invoice_sync.ledgers.port import Chart, ChartEntry
from invoice_sync.mapping.check import check, check_payouts
from invoice_sync.models.mapping import Connection

CHART = Chart(
    items=(),
    tax_codes=(),
    accounts=(
        ChartEntry(id="35", name="Checking", active=True, type="Bank", sales=False, payments=True),
        ChartEntry(id="4", name="Undeposited Funds", active=True, type="Other Current Asset", payments=True),
        ChartEntry(id="92", name="Merchant fees", active=True, type="Expense", sales=False),
        ChartEntry(id="93", name="Stripe unmatched", active=True, type="Other Income"),
        ChartEntry(id="610", name="Clearing", active=True, type="BANK", payments=True),
    ),
)


def qbo(**settings: Any) -> Connection:
    values: dict[str, Any] = {
        "connection_id": "acme",
        "tenant_id": "1",
        "payout_deposits": True,
        "payout_bank_account": "35",
        "payout_fee_account": "92",
        "payout_unmatched_account": "93",
        "refund_from_account": "4",
        **settings,
    }
    return Connection(**values)


def names(connection: Connection) -> list[str]:
    return [p.source_value for p in check_payouts(connection, CHART)[0]]


def test_a_complete_quickbooks_payout_setup_has_no_problem() -> None:
    assert names(qbo()) == []


def test_payout_deposits_off_asks_nothing() -> None:
    assert check_payouts(qbo(payout_deposits=False, payout_bank_account=None), CHART) == ([], 0)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"payout_bank_account": None}, ["payout_bank_account"]),
        ({"payout_bank_account": "92"}, ["payout_bank_account"]),  # an expense account takes no deposit
        ({"payout_fee_account": "999"}, ["payout_fee_account"]),
        ({"payout_unmatched_account": None}, ["payout_unmatched_account"]),
        ({"payment_account": "35"}, ["payment_account"]),  # payments would skip Undeposited Funds
        ({"refund_from_account": "35"}, ["refund_from_account"]),
        ({"refund_from_account": None}, ["refund_from_account"]),
    ],
)
def test_quickbooks_settings_a_deposit_could_not_match_with_are_problems(
    settings: dict[str, Any], expected: list[str]
) -> None:
    """Given one setting wrong or missing, then exactly that setting is named."""
    assert names(qbo(**settings)) == expected


def test_xero_needs_the_clearing_account_and_the_stripe_contact() -> None:
    """Given Xero with refunds leaving another account and no supplier contact, then both are named;
    with refunds from the clearing account and the contact set, nothing is."""
    base = {
        "ledger": "xero",
        "payment_account": "610",
        "refund_from_account": None,
        "payout_bank_account": "610",
    }
    bad = qbo(**{**base, "refund_from_account": "35"})
    assert names(bad) == ["refund_from_account", "payout_contact_id"]
    good = qbo(**{**base, "payout_contact_id": "c-stripe"})
    assert names(good) == []


def test_freshbooks_needs_only_the_fee_category() -> None:
    connection = Connection(connection_id="acme", tenant_id="1", ledger="freshbooks", payout_deposits=True)
    assert names(connection) == ["payout_fee_account"]
    assert names(connection.model_copy(update={"payout_fee_account": "3"})) == []


def test_check_reports_payout_problems_with_the_other_settings() -> None:
    """Given the whole check, then payout problems come with the rest, and are counted as checked."""
    problems, checked = check(qbo(payout_bank_account=None), (), CHART)
    assert "payout_bank_account" in [p.source_value for p in problems]
    assert checked >= 5
