"""FreshBooks' payout fee expense (design two-way 3.9), with the design's worked example (payout
po_1QxYz: fees of 7.57 out of a deposit of 202.43). Field names per
https://www.freshbooks.com/api/expenses and freshbooks-nodejs-sdk ``models/Expense.ts``."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from invoice_sync.errors import LedgerValidation, Unsupported
from invoice_sync.ledgers.freshbooks import payloads
from invoice_sync.ledgers.port import DepositDraft, DepositLine, marker

MARKER = marker("stripe", "po_1QxYz")


def _worked_example(*extra: DepositLine) -> DepositDraft:
    lines = (
        DepositLine("payment", Decimal("150.00"), "INV-1001", ledger_id="100101"),
        DepositLine("payment", Decimal("80.00"), "INV-1002", ledger_id="100102"),
        DepositLine("refund", Decimal("-20.00"), "Refund of ch_a", ledger_id="100103"),
        DepositLine("fee", Decimal("-7.57"), "Stripe fees, payout po_1QxYz", account="3100002"),
        *extra,
    )
    return DepositDraft(
        source_id="po_1QxYz",
        number="PO-3FA2C91B0D",
        arrival_on=date(2026, 12, 4),
        currency="USD",
        bank_account=None,
        clearing_account=None,
        contact_id=None,
        lines=lines,
        total=sum((line.amount for line in lines), Decimal(0)),
        private_note=MARKER,
    )


def test_worked_example_books_the_fees_as_one_positive_expense() -> None:
    """Given the worked example, then the expense is the fees' 7.57 as a positive string amount, in
    the fee category, from Stripe on the arrival day, noted with the marker, "fees" and the number;
    the payment and refund lines are not part of it."""
    assert payloads.fee_expense_body(_worked_example()) == {
        "amount": {"amount": "7.57", "code": "USD"},
        "categoryid": 3100002,
        "date": "2026-12-04",
        "vendor": "Stripe",
        "notes": f"{MARKER} fees PO-3FA2C91B0D",
        "staffid": 1,
    }


def test_several_fee_lines_of_one_category_make_one_expense_of_their_total() -> None:
    """Given a second fee line (a Billing fee) and a dispute adjustment, then the expense is the two
    fees together (7.57 + 0.30 = 7.87); the adjustment is left to the deposit slip."""
    draft = _worked_example(
        DepositLine("fee", Decimal("-0.30"), "Billing fee", account="3100002"),
        DepositLine("adjustment", Decimal("-15.00"), "Dispute du_1", account="3100001"),
    )
    body = payloads.fee_expense_body(draft)
    assert body is not None
    assert body["amount"] == {"amount": "7.87", "code": "USD"}


def test_a_payout_without_fees_books_nothing_and_reads_as_a_deposit_of_zero() -> None:
    """Given no fee line (or fees that cancel out), then there is no expense to book, and the
    deposit the adapter answers is 0 under the payout's own id, with its number and marker."""
    draft = _worked_example()
    no_fees = replace(draft, lines=draft.lines[:3], total=Decimal("210.00"))
    cancelled = _worked_example(DepositLine("fee", Decimal("7.57"), "Fees given back", account="3100002"))
    assert payloads.fee_expense_body(no_fees) is None
    assert payloads.fee_expense_body(cancelled) is None
    document = payloads.no_fee_document(no_fees)
    assert (document.id, document.total, document.number, document.private_note) == (
        "po_1QxYz",
        Decimal(0),
        "PO-3FA2C91B0D",
        f"{MARKER} fees PO-3FA2C91B0D",
    )


def test_fees_given_back_beyond_the_fees_are_unsupported() -> None:
    """Given fee lines that give back more than they charge, then no expense can hold it (an
    expense is money spent): Unsupported, for a person to record by hand."""
    draft = _worked_example(DepositLine("fee", Decimal("10.00"), "Fees given back", account="3100002"))
    with pytest.raises(Unsupported, match="cannot be negative"):
        payloads.fee_expense_body(draft)


@pytest.mark.parametrize(
    ("second", "words"),
    [
        (DepositLine("fee", Decimal("-0.30"), "Billing fee", account="3100001"), "one expense category"),
        (DepositLine("fee", Decimal("-0.30"), "Billing fee"), "one expense category"),
    ],
)
def test_fee_lines_must_name_one_category(second: DepositLine, words: str) -> None:
    with pytest.raises(LedgerValidation, match=words):
        payloads.fee_expense_body(_worked_example(second))


def test_a_fee_category_that_is_not_an_id_is_refused() -> None:
    draft = _worked_example()
    lines = (*draft.lines[:3], replace(draft.lines[3], account="Merchant Fees"))
    with pytest.raises(LedgerValidation, match="not a FreshBooks expense category id"):
        payloads.fee_expense_body(replace(draft, lines=lines))


def test_the_search_covers_the_arrival_day() -> None:
    """date_min is inclusive and date_max exclusive (FreshBooks' expense filters): one day."""
    assert payloads.fee_expense_search(_worked_example()) == {
        "date_min": "2026-12-04",
        "date_max": "2026-12-05",
    }


def test_an_expense_reads_back_as_the_deposit() -> None:
    """Given FreshBooks' expense, then it reads as the port's deposit: id, amount, currency, the
    number its notes carry; deleted (vis_state 1) as voided; a person's notes give no number."""
    obj = {
        "id": 100123,
        "amount": {"amount": "7.57", "code": "USD"},
        "notes": f"{MARKER} fees PO-3FA2C91B0D",
        "updated": "2026-12-04 09:00:00",
        "vis_state": 0,
    }
    document = payloads.expense_document(obj)
    assert (document.id, document.total, document.currency, document.number, document.voided) == (
        "100123",
        Decimal("7.57"),
        "USD",
        "PO-3FA2C91B0D",
        False,
    )
    assert payloads.expense_document({**obj, "vis_state": 1}).voided
    assert payloads.expense_document({**obj, "notes": "Stripe fees"}).number is None
