"""Xero request bodies from drafts, and Xero objects back to port values. Pure functions.

Field names follow the official OpenAPI description (XeroAPI/Xero-OpenAPI ``xero_accounting.yaml``);
tests validate every body built here against its request schemas.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from invoice_sync.errors import LedgerValidation
from invoice_sync.ledgers.port import (
    InvoiceDraft,
    LedgerContact,
    LedgerDocument,
    LedgerPayment,
    PaymentApplication,
    PaymentDraft,
    as_decimal,
)

REFERENCE_MAX = 255
UNIT_PLACES = 4  # requests carry ?unitdp=4, so unit prices keep four decimals


CONTACT_NUMBER_MAX = 50


def contact_payload(name: str, email: str | None, reference: str) -> dict[str, Any]:
    # ContactNumber can only be set through the API: the natural home of the source customer id.
    contact: dict[str, Any] = {"Name": name[:255], "ContactNumber": reference[-CONTACT_NUMBER_MAX:]}
    if email:
        contact["EmailAddress"] = email
    return {"Contacts": [contact]}


def invoice_body(draft: InvoiceDraft) -> dict[str, Any]:
    """One ACCREC invoice, authorised, with the source's per-line tax and discount."""
    line_discounts = sum((line.discount for line in draft.lines), Decimal(0))
    if line_discounts != draft.discount:
        # Xero has no document-level discount: every discount must sit on a line.
        raise LedgerValidation(
            f"Xero takes discounts per line: lines carry {line_discounts}, the document {draft.discount}"
        )
    items: list[dict[str, Any]] = []
    for line in draft.lines:
        if not line.account:
            raise LedgerValidation(f"line {line.description!r} has no Xero account code")
        quantity, unit_amount = line.priced(UNIT_PLACES)
        item: dict[str, Any] = {
            "Description": line.description[:4000],
            "Quantity": quantity,
            "UnitAmount": unit_amount,
            "AccountCode": line.account,
            "TaxType": line.tax_code,
            "TaxAmount": line.tax,
            "LineAmount": line.amount - line.discount,
        }
        if line.item_id:
            item["ItemCode"] = line.item_id
        if line.discount:
            item["DiscountAmount"] = line.discount
        items.append(item)
    body: dict[str, Any] = {
        "Type": "ACCREC",
        "Contact": {"ContactID": draft.customer_id},
        "Date": draft.issued_on.isoformat(),
        "DueDate": (draft.due_on or draft.issued_on).isoformat(),
        "LineAmountTypes": "Exclusive",
        "Reference": draft.private_note[:REFERENCE_MAX],
        "Status": "AUTHORISED",
        "CurrencyCode": draft.currency,
        "LineItems": items,
    }
    if draft.number:
        body["InvoiceNumber"] = draft.number
    return body


def credit_note_body(draft: InvoiceDraft) -> dict[str, Any]:
    """An ACCRECCREDIT credit note. Xero credit notes take no line discounts, so each line goes
    net of its discount, which keeps the line, tax and total figures the source's."""
    net = tuple(
        replace(line, amount=line.amount - line.discount, discount=Decimal(0)) for line in draft.lines
    )
    body = invoice_body(replace(draft, lines=net, discount=Decimal(0)))
    for name in ("Type", "DueDate", "InvoiceNumber"):
        body.pop(name, None)
    body["Type"] = "ACCRECCREDIT"
    if draft.number:
        body["CreditNoteNumber"] = draft.number
    return body


def allocation_body(invoice_id: str, amount: Decimal, on: date) -> dict[str, Any]:
    return {"Invoice": {"InvoiceID": invoice_id}, "Amount": amount, "Date": on.isoformat()}


def _payment_element(
    draft: PaymentDraft, target: dict[str, dict[str, str]], missing_account: str
) -> dict[str, Any]:
    """One Payment element: money into or out of the document ``target`` names, through the bank
    account code ``draft.account``. Its Reference carries the marker, so a payment whose response
    was lost is recognised by it."""
    if not draft.account:
        raise LedgerValidation(missing_account)
    return {
        **target,
        "Account": {"Code": draft.account},
        "Date": draft.paid_on.isoformat(),
        "Amount": draft.amount,
        "Reference": draft.private_note[:REFERENCE_MAX],
    }


def payment_body(draft: PaymentDraft) -> dict[str, Any]:
    return _payment_element(
        draft,
        {"Invoice": {"InvoiceID": draft.invoice_id}},
        "set the connection's payment account (a Xero bank or clearing account code)",
    )


def credit_payout_payload(draft: PaymentDraft) -> dict[str, Any]:
    """``PUT /Payments`` paying a credit note out (a refund): Xero names the credit note instead
    of an invoice, and ``draft.account`` is the bank account the money leaves from."""
    body = _payment_element(
        draft,
        {"CreditNote": {"CreditNoteID": draft.invoice_id}},
        "set the connection's refund account (the Xero bank account code refunds are paid from)",
    )
    return {"Payments": [body]}


def invoice_document(obj: dict[str, Any]) -> LedgerDocument:
    return LedgerDocument(
        id=str(obj["InvoiceID"]),
        version=obj.get("UpdatedDateUTC"),
        number=obj.get("InvoiceNumber"),
        total=as_decimal(obj.get("Total")),
        balance=as_decimal(obj.get("AmountDue")),
        currency=str(obj.get("CurrencyCode", "")),
        private_note=obj.get("Reference"),
        voided=obj.get("Status") in {"VOIDED", "DELETED"},
        linked_payment_ids=_payment_ids(obj),
    )


def credit_note_document(obj: dict[str, Any]) -> LedgerDocument:
    return LedgerDocument(
        id=str(obj["CreditNoteID"]),
        version=obj.get("UpdatedDateUTC"),
        number=obj.get("CreditNoteNumber"),
        total=as_decimal(obj.get("Total")),
        balance=as_decimal(obj.get("RemainingCredit")),
        currency=str(obj.get("CurrencyCode", "")),
        private_note=obj.get("Reference"),
        voided=obj.get("Status") in {"VOIDED", "DELETED"},
        linked_payment_ids=_payment_ids(obj),
    )


def _payment_ids(obj: dict[str, Any]) -> tuple[str, ...]:
    """The payments an invoice lists (money in) or a credit note lists (payouts)."""
    return tuple(str(p["PaymentID"]) for p in obj.get("Payments") or () if p.get("PaymentID"))


def payment_document(obj: dict[str, Any]) -> LedgerDocument:
    """A payment into an invoice or out of a credit note (a refund): Xero names whichever it
    settles, and the Reference is the marker either way."""
    paid = obj.get("Invoice") or obj.get("CreditNote") or {}
    return LedgerDocument(
        id=str(obj["PaymentID"]),
        version=obj.get("UpdatedDateUTC"),
        number=obj.get("Reference"),
        total=as_decimal(obj.get("Amount")),
        balance=Decimal(0),
        currency=str(paid.get("CurrencyCode", "")),
        private_note=obj.get("Reference"),
        voided=obj.get("Status") == "DELETED",
    )


# The one kind of Xero payment that is money received on a sales invoice (ARCREDITPAYMENT pays a
# credit note out, the prepayment and overpayment kinds move money between those documents).
RECEIVED_ON_INVOICE = "ACCRECPAYMENT"


def ledger_payment(obj: dict[str, Any]) -> LedgerPayment:
    """A Payment element as Xero returns it. Only an ACCRECPAYMENT applies money to an invoice, in
    the invoice's currency (``Amount``; ``BankAmount`` is the bank account's); a deleted payment
    (``Status`` DELETED, Xero's only way to undo one) reads as voided."""
    invoice = obj.get("Invoice") or {}
    paid = invoice or obj.get("CreditNote") or {}
    account = obj.get("Account") or {}
    amount = as_decimal(obj.get("Amount"))
    applications: tuple[PaymentApplication, ...] = ()
    if obj.get("PaymentType") == RECEIVED_ON_INVOICE and invoice.get("InvoiceID"):
        applications = (PaymentApplication(str(invoice["InvoiceID"]), amount),)
    paid_on = moment(obj.get("Date"))
    reference = obj.get("Reference") or None
    return LedgerPayment(
        id=str(obj["PaymentID"]),
        version=obj.get("UpdatedDateUTC"),
        currency=str(paid.get("CurrencyCode", "")),
        total=amount,
        paid_on=paid_on.date() if paid_on else date.fromisoformat(str(obj.get("Date", ""))[:10]),
        note=reference,
        reference=reference,
        method=account.get("Name") or None,
        applications=applications,
        voided=obj.get("Status") == "DELETED",
        updated_at=moment(obj.get("UpdatedDateUTC")),
        deposit_account=str(account["Code"]) if account.get("Code") else None,
    )


def moment(value: Any) -> datetime | None:
    """Xero's ``/Date(1700000000000+0000)/`` as a UTC datetime; None when absent or unreadable."""
    match = re.fullmatch(r"/Date\((-?\d+)([+-]\d{4})?\)/", str(value or ""))
    return datetime.fromtimestamp(int(match.group(1)) / 1000, UTC) if match else None


def contact(obj: dict[str, Any]) -> LedgerContact:
    return LedgerContact(
        id=str(obj["ContactID"]), name=str(obj.get("Name", "")), reference=obj.get("ContactNumber")
    )


def quote(value: str) -> str:
    """A string literal for Xero's ``where`` filter (double quotes, backslash-escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
