"""Xero request bodies (checked against Xero's own OpenAPI description) and Xero errors."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync.errors import (
    CompanyUnavailable,
    DuplicateName,
    DuplicateNumber,
    LedgerThrottled,
    LedgerUnavailable,
    LedgerValidation,
    NotFound,
    TokenExpired,
)
from invoice_sync.ledgers.http import dumps
from invoice_sync.ledgers.port import InvoiceDraft, LineDraft, PaymentDraft, marker
from invoice_sync.ledgers.xero import payloads
from invoice_sync.ledgers.xero.client import error_for
from invoice_sync_ops.specs import spec_path, xero_validator

needs_spec = pytest.mark.skipif(
    not spec_path().exists(),
    reason="the Xero OpenAPI spec (shared/specs/xero/xero_accounting.yaml) is absent",
)


def _draft(**changes: Any) -> InvoiceDraft:
    lines = (
        LineDraft(
            item_id="CONSULT",
            description="Consulting",
            quantity=3,
            amount=Decimal("100.00"),
            tax_code="OUTPUT2",
            tax=Decimal("7.43"),
            discount=Decimal("10.00"),
            account="200",
        ),
        LineDraft(
            item_id="",
            description="Usage",
            quantity=1_000_000,
            amount=Decimal("12.34"),
            tax_code="NONE",
            account="260",
        ),
    )
    values: dict[str, Any] = {
        "source_id": "in_1",
        "customer_id": "c0ffee00-0000-0000-0000-000000000001",
        "number": "INV-1",
        "issued_on": date(2026, 11, 2),
        "due_on": None,
        "currency": "USD",
        "lines": lines,
        "discount": Decimal("10.00"),
        "tax": Decimal("7.43"),
        "total": Decimal("109.77"),
        "memo": None,
        "private_note": marker("stripe", "in_1"),
    }
    return InvoiceDraft(**{**values, **changes})


def _wire(body: dict[str, Any]) -> Any:
    """What actually goes over HTTP, parsed back: exact decimals become JSON numbers."""
    return json.loads(dumps(body))


@needs_spec
def test_invoice_body_validates_against_the_xero_spec() -> None:
    """Given a two-line draft with a discount, a usage-priced line and no due date, the ACCREC
    body validates against Xero's ``Invoices`` request schema."""
    body = payloads.invoice_body(_draft())
    assert xero_validator("Invoices")(_wire({"Invoices": [body]})) == []


def test_invoice_body_fields() -> None:
    """Lines carry account, tax type, the source's tax and discount; due date falls back to the
    issue date (Xero requires one on an authorised invoice); the usage line goes as one unit."""
    body = payloads.invoice_body(_draft())
    assert body["Type"] == "ACCREC"
    assert body["Status"] == "AUTHORISED"
    assert body["LineAmountTypes"] == "Exclusive"
    assert body["DueDate"] == "2026-11-02"
    assert body["Reference"] == "invoice-sync: stripe in_1"
    first, usage = body["LineItems"]
    assert (first["Quantity"], first["UnitAmount"], first["DiscountAmount"], first["LineAmount"]) == (
        Decimal(3),
        Decimal("33.3333"),
        Decimal("10.00"),
        Decimal("90.00"),
    )
    assert (first["AccountCode"], first["TaxType"], first["TaxAmount"], first["ItemCode"]) == (
        "200",
        "OUTPUT2",
        Decimal("7.43"),
        "CONSULT",
    )
    assert (usage["Quantity"], usage["UnitAmount"], usage["LineAmount"]) == (
        Decimal(1),
        Decimal("12.34"),
        Decimal("12.34"),
    )
    assert "ItemCode" not in usage


def test_discount_not_on_lines_is_refused() -> None:
    """Xero has no document discount: a draft whose discount is not carried by its lines is refused."""
    with pytest.raises(LedgerValidation, match="per line"):
        payloads.invoice_body(_draft(discount=Decimal("15.00")))


def test_line_without_account_is_refused() -> None:
    line = LineDraft(item_id="X", description="No account", quantity=1, amount=Decimal(1), tax_code="NONE")
    with pytest.raises(LedgerValidation, match="account code"):
        payloads.invoice_body(_draft(lines=(line,), discount=Decimal(0)))


@needs_spec
def test_payment_and_contact_bodies_validate_against_the_xero_spec() -> None:
    payment = PaymentDraft(
        source_id="inpay_1",
        customer_id="c",
        invoice_id="i-1",
        amount=Decimal("109.77"),
        currency="USD",
        paid_on=date(2026, 11, 20),
        private_note=marker("stripe", "inpay_1"),
        account="090",
    )
    assert xero_validator("Payments")(_wire({"Payments": [payloads.payment_body(payment)]})) == []
    contacts = payloads.contact_payload("Acme Corp", "ap@acme.test", "cus_RAcme01")
    assert xero_validator("Contacts")(_wire(contacts)) == []
    assert contacts["Contacts"][0]["ContactNumber"] == "cus_RAcme01"


def test_payment_without_account_is_refused() -> None:
    payment = PaymentDraft(
        source_id="p",
        customer_id="c",
        invoice_id="i",
        amount=Decimal(1),
        currency="USD",
        paid_on=date(2026, 11, 20),
        private_note="n",
    )
    with pytest.raises(LedgerValidation, match="payment account"):
        payloads.payment_body(payment)


def test_where_literals_are_escaped() -> None:
    assert payloads.quote('Acme "Quoted" \\ Co') == '"Acme \\"Quoted\\" \\\\ Co"'


@pytest.mark.parametrize(
    ("status", "body", "headers", "kind"),
    [
        (429, "", {"X-Rate-Limit-Problem": "day", "Retry-After": "3600"}, LedgerThrottled),
        (401, {"Title": "Unauthorized"}, {}, TokenExpired),
        (403, {"Detail": "AuthenticationUnsuccessful"}, {}, CompanyUnavailable),
        (404, "The resource you're looking for cannot be found", {}, NotFound),
        (503, {"Title": "Service Unavailable"}, {}, LedgerUnavailable),
        (
            400,
            {
                "Type": "ValidationException",
                "Elements": [{"ValidationErrors": [{"Message": "Invoice # must be unique."}]}],
            },
            {},
            DuplicateNumber,
        ),
        (
            400,
            {
                "Type": "ValidationException",
                "Elements": [
                    {
                        "ValidationErrors": [
                            {"Message": "The contact name Acme is already assigned to another contact."}
                        ]
                    }
                ],
            },
            {},
            DuplicateName,
        ),
        (
            400,
            {
                "Type": "ValidationException",
                "Elements": [
                    {
                        "ValidationErrors": [
                            {"Message": "Account code '999' is not a valid code for this document."}
                        ]
                    }
                ],
            },
            {},
            LedgerValidation,
        ),
    ],
)
def test_xero_errors_map_to_the_port(status: int, body: Any, headers: dict[str, str], kind: type) -> None:
    """Each Xero error response becomes the port's error of the same meaning, with Xero's words."""
    error = error_for(status, body, headers)
    assert type(error) is kind


def test_day_limit_carries_its_retry_after() -> None:
    error = error_for(429, "", {"X-Rate-Limit-Problem": "day", "Retry-After": "3600"})
    assert isinstance(error, LedgerThrottled)
    assert error.retry_after == 3600.0
    assert "day" in str(error)


def test_validation_message_is_quoted() -> None:
    body = {
        "Type": "ValidationException",
        "Elements": [{"ValidationErrors": [{"Message": "The TaxType code X does not exist"}]}],
    }
    assert "The TaxType code X does not exist" in str(error_for(400, body, {}))


@needs_spec
def test_credit_note_and_allocation_bodies_validate_against_the_xero_spec() -> None:
    """The ACCRECCREDIT body (lines net of their discount: Xero credit notes take none) and the
    allocation body validate against Xero's CreditNotes and Allocations schemas."""
    body = payloads.credit_note_body(_draft(number="CN-1"))
    assert body["Type"] == "ACCRECCREDIT"
    assert body["CreditNoteNumber"] == "CN-1"
    assert "InvoiceNumber" not in body
    assert "DueDate" not in body
    assert all("DiscountAmount" not in line for line in body["LineItems"])
    assert body["LineItems"][0]["LineAmount"] == Decimal("90.00")
    assert xero_validator("CreditNotes")(_wire({"CreditNotes": [body]})) == []
    allocation = payloads.allocation_body("i-1", Decimal("74.13"), date(2026, 11, 25))
    assert xero_validator("Allocations")(_wire({"Allocations": [allocation]})) == []


def _payout(**changes: Any) -> PaymentDraft:
    values: dict[str, Any] = {
        "source_id": "re_1",
        "customer_id": "c",
        "invoice_id": "cn-1",
        "amount": Decimal("25.50"),
        "currency": "USD",
        "paid_on": date(2026, 11, 26),
        "private_note": marker("stripe", "re_1"),
        "account": "090",
    }
    return PaymentDraft(**{**values, **changes})


@needs_spec
def test_credit_payout_payload_validates_against_the_xero_spec() -> None:
    """Paying a credit note out (a refund) names the credit note, not an invoice, the bank account
    the money leaves from and the marker as Reference (so a payout whose response was lost is
    recognised); the body validates against Xero's Payments request schema."""
    payload = payloads.credit_payout_payload(_payout())
    assert xero_validator("Payments")(_wire(payload)) == []
    (body,) = payload["Payments"]
    assert body == {
        "CreditNote": {"CreditNoteID": "cn-1"},
        "Account": {"Code": "090"},
        "Date": "2026-11-26",
        "Amount": Decimal("25.50"),
        "Reference": "invoice-sync: stripe re_1",
    }
    assert "Invoice" not in body


def test_credit_payout_without_account_is_refused() -> None:
    """Xero needs the account refunds leave from; without one the payout is refused before any call."""
    with pytest.raises(LedgerValidation, match="refund account"):
        payloads.credit_payout_payload(_payout(account=None))


def test_credit_note_document_lists_payouts_and_remaining_credit() -> None:
    """A credit note's balance is Xero's RemainingCredit and its payouts are its linked payments;
    a payout read back is a payment whose private note is its Reference, in the credit note's currency."""
    note = payloads.credit_note_document(
        {
            "CreditNoteID": "cn-1",
            "CreditNoteNumber": "CN-9",
            "Total": Decimal("30.00"),
            "RemainingCredit": Decimal("4.50"),
            "CurrencyCode": "USD",
            "Status": "AUTHORISED",
            "Payments": [{"PaymentID": "p-1", "Amount": Decimal("25.50")}],
        }
    )
    assert (note.balance, note.linked_payment_ids) == (Decimal("4.50"), ("p-1",))
    payout = payloads.payment_document(
        {
            "PaymentID": "p-1",
            "Amount": Decimal("25.50"),
            "Reference": "invoice-sync: stripe re_1",
            "Status": "AUTHORISED",
            "PaymentType": "ARCREDITPAYMENT",
            "CreditNote": {"CreditNoteID": "cn-1", "CurrencyCode": "USD"},
        }
    )
    assert (payout.id, payout.total, payout.private_note, payout.currency) == (
        "p-1",
        Decimal("25.50"),
        "invoice-sync: stripe re_1",
        "USD",
    )
