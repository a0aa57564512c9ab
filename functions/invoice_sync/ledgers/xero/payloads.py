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
    DepositDraft,
    DepositLine,
    InvoiceDraft,
    LedgerContact,
    LedgerDocument,
    LedgerPayment,
    PaymentApplication,
    PaymentDraft,
    as_decimal,
    marked,
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


# --------------------------------------------------------------------------------------------------
# Payouts as bank deposits (design two-way 3.4, 3.5.2): the clearing-account pattern (design 2.3).
# Payments push books land in the clearing account and refunds leave it, so payment and refund
# lines need no write here. What is left is booked out of / into clearing as spend / receive money
# (fees, adjustments, unmatched money), then one bank transfer of the deposit's total moves the net
# to the bank account: clearing then holds what it held before the payout's transactions.

# Kinds of deposit line whose money is already in the clearing account (booked by push).
IN_CLEARING = frozenset({"payment", "refund"})
SPEND = "SPEND"
RECEIVE = "RECEIVE"


def deposit_reference(draft: DepositDraft, part: str | None = None) -> str:
    """The ``Reference`` each of a payout's Xero objects carries: its marker, the deposit's number,
    and for the bank transactions their part (``spend``, ``receive``). ``BankTransfer`` has no
    field but ``Reference`` to carry text (xero_accounting.yaml ``BankTransfer``) and
    ``BankTransaction`` none but ``Reference`` and ``Url``, so the one field holds both the marker
    (what adoption checks, read by ``marked``) and the number (what a person matches the bank line
    with); the marker comes first, as on every Xero payment invoice-sync books."""
    reference = f"{draft.private_note} {draft.number}" + (f" {part}" if part else "")
    if len(reference) > REFERENCE_MAX:
        raise LedgerValidation(f"deposit {draft.number}: its reference is over {REFERENCE_MAX} characters")
    return reference


def deposit_number(reference: str | None) -> str | None:
    """The deposit number a ``deposit_reference`` carries (the word after the marker); a reference
    without the marker is returned as it is (someone else's transfer)."""
    parts = (reference or "").split()
    if marked(reference) is not None and len(parts) > MARKER_WORDS:
        return parts[MARKER_WORDS]
    return reference or None


MARKER_WORDS = 3  # "invoice-sync:", source, source id


def _clearing(draft: DepositDraft) -> str:
    if not draft.clearing_account:
        raise LedgerValidation(
            "set the connection's payment_account: the Xero clearing account payments land in"
        )
    return draft.clearing_account


def _deposit_line_item(line: DepositLine) -> dict[str, Any]:
    if not line.account:
        raise LedgerValidation(
            f"deposit line {line.description!r} ({line.kind}) has no Xero account code: set the "
            f"connection's payout_{'fee' if line.kind == 'fee' else line.kind}_account"
        )
    # Spend and receive money carry positive amounts: the transaction's Type gives the direction.
    return {
        "Description": line.description[:4000],
        "Quantity": Decimal(1),
        "UnitAmount": abs(line.amount),
        "AccountCode": line.account,
    }


def _bank_transaction(draft: DepositDraft, kind: str, lines: list[DepositLine]) -> dict[str, Any] | None:
    if not lines:
        return None
    if not draft.contact_id:
        raise LedgerValidation(
            "Xero's spend and receive money need a contact: set the connection's payout_contact_id "
            '(the "Stripe" supplier)'
        )
    return {
        "Type": kind,
        "Contact": {"ContactID": draft.contact_id},
        "BankAccount": {"Code": _clearing(draft)},
        "Date": draft.arrival_on.isoformat(),
        "Reference": deposit_reference(draft, kind.lower()),
        "LineAmountTypes": "NoTax",
        "CurrencyCode": draft.currency,
        "Status": "AUTHORISED",
        "LineItems": [_deposit_line_item(line) for line in lines],
    }


def spend_body(draft: DepositDraft) -> dict[str, Any] | None:
    """One SPEND out of the clearing account: every fee line and every other line that takes money
    out (a dispute, a negative adjustment), one line item each; None when there is none."""
    out = [line for line in draft.lines if line.kind not in IN_CLEARING and line.amount < 0]
    return _bank_transaction(draft, SPEND, out)


def receive_body(draft: DepositDraft) -> dict[str, Any] | None:
    """One RECEIVE into the clearing account: the lines that bring money no payment accounts for
    (unmatched charges, positive adjustments, fees given back); None when there is none."""
    into = [line for line in draft.lines if line.kind not in IN_CLEARING and line.amount > 0]
    return _bank_transaction(draft, RECEIVE, into)


def bank_transfer_body(draft: DepositDraft) -> dict[str, Any]:
    """The transfer of the deposit's total from the clearing account to the bank account: the line
    the bank feed matches (its ``ToBankTransactionID``). No currency: each account has its own."""
    clearing = _clearing(draft)
    if not draft.bank_account:
        raise LedgerValidation("set the connection's payout_bank_account (the Xero bank account code)")
    if draft.bank_account == clearing:
        raise LedgerValidation(
            f"payout_bank_account {draft.bank_account} is the clearing account: a transfer needs two accounts"
        )
    if draft.total <= 0:
        raise LedgerValidation(f"deposit {draft.number}: a Xero bank transfer needs a positive total")
    return {
        "FromBankAccount": {"Code": clearing},
        "ToBankAccount": {"Code": draft.bank_account},
        "Amount": draft.total,
        "Date": draft.arrival_on.isoformat(),
        "Reference": deposit_reference(draft),
    }


def deposit_bodies(
    draft: DepositDraft,
) -> tuple[dict[str, Any] | None, dict[str, Any] | None, dict[str, Any]]:
    """(spend, receive, transfer) for a payout, every one built (so checked) before any is sent."""
    transfer = bank_transfer_body(draft)
    return spend_body(draft), receive_body(draft), transfer


def transfer_document(obj: dict[str, Any], currency: str) -> LedgerDocument:
    """A BankTransfer as the port's deposit. Xero keeps no currency on a transfer (its accounts
    have one), so the caller says it; a transfer is never changed, only deleted."""
    return LedgerDocument(
        id=str(obj["BankTransferID"]),
        version=obj.get("CreatedDateUTC"),
        number=deposit_number(obj.get("Reference")),
        total=as_decimal(obj.get("Amount")),
        balance=Decimal(0),
        currency=currency,
        private_note=obj.get("Reference"),
        voided=obj.get("Status") == "DELETED",
    )
