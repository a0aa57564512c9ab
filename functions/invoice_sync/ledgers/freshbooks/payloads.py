"""FreshBooks request bodies from drafts, and FreshBooks objects back to port values. Pure functions.

FreshBooks differs from the other ledgers in three ways that matter here:

* Money travels as ``{"amount": "20.00", "code": "USD"}`` with a *string* amount: built from
  ``Decimal`` with ``format(..., "f")`` and read back with ``Decimal(str(...))``, never float.
* A line's tax is a *percent* string (``taxAmount1``, at most three places) that FreshBooks applies
  itself, rounding each line half-up to the cent. The source gives a tax *amount*, so the percent is
  derived from the line's own figures and accepted only if FreshBooks' rounding gives that amount
  back; otherwise the ledger total would drift from the source, and the draft is refused.
* There is no line discount, only one invoice-level percent (``discount_value``) applied before
  tax. It is used only when one percent reproduces the document's discount and every line's share.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, DecimalException
from typing import Any
from zoneinfo import ZoneInfo

from invoice_sync.errors import LedgerValidation, Unsupported
from invoice_sync.ledgers.port import (
    MARKER_PREFIX,
    DepositDraft,
    InvoiceDraft,
    LedgerContact,
    LedgerDocument,
    LedgerPayment,
    LineDraft,
    PaymentApplication,
    PaymentDraft,
)

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
PERCENT_PLACES = 3  # FreshBooks refuses a percent with more decimals (errno 1018)
UNIT_PLACES = 2  # unit_cost is money
PAYMENT_TYPE = "Other"  # the source's payment method is not known to the port
# FreshBooks' accounting timestamps ("updated") are US/Eastern wall-clock time.
ACCOUNTING_TZ = ZoneInfo("America/New_York")


def money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": format(amount, "f"), "code": currency}


def _round(value: Decimal, step: Decimal = CENT) -> Decimal:
    # FreshBooks rounds half-up (0.125 -> 0.13), as the sandbox and the web app do.
    return value.quantize(step, rounding=ROUND_HALF_UP)


def _candidates(ratio: Decimal) -> Iterable[Decimal]:
    """``ratio`` (a percent) at 0, 1, 2, then 3 decimals: the shortest one that works is the one sent."""
    for places in range(PERCENT_PLACES + 1):
        yield _round(ratio, Decimal(1).scaleb(-places))


def discount_percent(draft: InvoiceDraft) -> Decimal | None:
    """The one invoice-level percent that reproduces the draft's discount on every line, or None."""
    line_discounts = sum((line.discount for line in draft.lines), Decimal(0))
    if line_discounts != draft.discount:
        raise LedgerValidation(
            f"FreshBooks discounts the whole invoice by one percent: lines carry {line_discounts}, "
            f"the document {draft.discount}"
        )
    if not draft.discount:
        return None
    subtotal = sum((line.amount for line in draft.lines), Decimal(0))
    if subtotal <= 0 or draft.discount < 0:
        raise LedgerValidation(f"FreshBooks cannot discount {draft.discount} off a subtotal of {subtotal}")
    for percent in _candidates(draft.discount / subtotal * HUNDRED):
        if _round(subtotal * percent / HUNDRED) == draft.discount and all(
            _round(line.amount * percent / HUNDRED) == line.discount for line in draft.lines
        ):
            return percent
    shares = ", ".join(f"{line.discount} of {line.amount}" for line in draft.lines)
    raise LedgerValidation(
        "FreshBooks takes one discount percent for the whole invoice, and no percent with up to "
        f"{PERCENT_PLACES} decimals gives this invoice's discounts ({shares}); "
        "the invoice cannot be copied exactly"
    )


def tax_percent(line: LineDraft, discount: Decimal | None) -> Decimal | None:
    """The percent FreshBooks must apply to the line for its tax to equal the source's, or None."""
    if not line.tax:
        return None
    if line.tax < 0 or not line.tax_code:
        raise LedgerValidation(
            f"line {line.description!r} carries tax {line.tax} but no FreshBooks tax name to put it under"
        )
    taxable = line.amount - line.discount
    # What FreshBooks taxes: the line amount less the invoice percent, unrounded.
    base = line.amount * (1 - (discount or 0) / HUNDRED)
    if taxable > 0:
        for percent in _candidates(line.tax / taxable * HUNDRED):
            if _round(base * percent / HUNDRED) == line.tax:
                return percent
    raise LedgerValidation(
        f"line {line.description!r}: FreshBooks taxes by percent (up to {PERCENT_PLACES} decimals), and no "
        f"percent of {taxable} rounds to the source's tax of {line.tax}; the invoice cannot be copied exactly"
    )


def _lines(draft: InvoiceDraft, discount: Decimal | None) -> list[dict[str, Any]]:
    # FreshBooks keeps money to the cent in every currency: a KWD or BHD amount with a third
    # decimal would be rounded away (0.001 KWD becomes 0.00), so such a document is refused.
    amounts = (
        draft.total,
        draft.tax,
        draft.discount,
        *(x for line in draft.lines for x in (line.amount, line.tax)),
    )
    finer = next((amount for amount in amounts if amount != amount.quantize(CENT)), None)
    if finer is not None:
        raise LedgerValidation(
            f"FreshBooks keeps money to the cent and {finer} {draft.currency} is finer; the document "
            "cannot be copied exactly"
        )
    lines: list[dict[str, Any]] = []
    subtotal = tax_total = Decimal(0)
    for line in draft.lines:
        # FreshBooks totals a line to the cent whatever the currency (``_round``).
        quantity, unit_cost = line.priced(UNIT_PLACES, money_places=2)
        percent = tax_percent(line, discount)
        item: dict[str, Any] = {
            "type": 0,  # a normal line (1 would be a time entry)
            "name": line.item_id or line.description[:200],
            "description": line.description,
            "qty": format(quantity, "f"),
            "unit_cost": money(unit_cost, draft.currency),
        }
        if percent is not None:
            item["taxName1"] = line.tax_code
            item["taxAmount1"] = format(percent, "f")
        lines.append(item)
        subtotal += line.amount
        tax_total += line.tax
    # FreshBooks computes the total itself; refuse here rather than let it differ from the source.
    if subtotal - draft.discount + tax_total != draft.total:
        raise LedgerValidation(
            f"FreshBooks would total {subtotal - draft.discount + tax_total} "
            f"(lines {subtotal} - discount {draft.discount} + line taxes {tax_total}), "
            f"the source says {draft.total}"
        )
    return lines


def _notes(draft: InvoiceDraft) -> str:
    # Notes are the only free text FreshBooks keeps on a document: the memo, then the marker.
    return f"{draft.memo}\n\n{draft.private_note}" if draft.memo else draft.private_note


def invoice_body(draft: InvoiceDraft) -> dict[str, Any]:
    """The invoice as FreshBooks takes it on create or update (``{"invoice": <this>}``)."""
    discount = discount_percent(draft)
    body: dict[str, Any] = {
        "customerid": _id(draft.customer_id),
        "create_date": draft.issued_on.isoformat(),
        "due_offset_days": ((draft.due_on or draft.issued_on) - draft.issued_on).days,
        "currency_code": draft.currency,
        "lines": _lines(draft, discount),
        "notes": _notes(draft),
        "discount_value": format(discount or Decimal(0), "f"),
    }
    if draft.number:
        body["invoice_number"] = draft.number
    return body


def credit_note_body(draft: InvoiceDraft) -> dict[str, Any]:
    """A credit note: like an invoice, but ``clientid`` (not ``customerid``) and no discount at all."""
    if draft.discount or any(line.discount for line in draft.lines):
        raise LedgerValidation(
            "FreshBooks credit notes take no discount; the credit note cannot be copied exactly"
        )
    body: dict[str, Any] = {
        "clientid": _id(draft.customer_id),
        "create_date": draft.issued_on.isoformat(),
        "currency_code": draft.currency,
        "credit_type": "goodwill",
        "lines": _lines(draft, None),
        "notes": _notes(draft),
    }
    if draft.number:
        body["credit_number"] = draft.number
    return body


def credit_payment_body(
    credit_note_id: str, invoice_id: str, amount: Decimal, currency: str, on: str
) -> dict[str, Any]:
    """Credit applied to an invoice: FreshBooks records it as a payment drawn from the credit note."""
    return {
        "invoiceid": _id(invoice_id),
        "amount": money(amount, currency),
        "date": on,
        "type": "Credit",
        "creditid": _id(credit_note_id),
        "from_credit": True,
        "note": f"{MARKER_PREFIX} applies credit note {credit_note_id}",
    }


def payment_body(draft: PaymentDraft) -> dict[str, Any]:
    return {
        "invoiceid": _id(draft.invoice_id),
        "amount": money(draft.amount, draft.currency),
        "date": draft.paid_on.isoformat(),
        "type": PAYMENT_TYPE,
        "note": draft.private_note,
    }


def payout_by_hand(draft: PaymentDraft) -> str:
    """What a person records in FreshBooks for a refund paid out of a credit note (its API cannot).

    FreshBooks keeps what it owes clients in its "Customer Credit" liability account, and money paid
    back leaves a bank account, so the record is a manual journal entry between the two. The default
    chart of accounts and how to make one: https://support.freshbooks.com/hc/en-us/articles/360001212251
    """
    amount = f"{format(draft.amount, 'f')} {draft.currency}"
    source = f"account {draft.account}" if draft.account else "the bank account the refund was paid from"
    # The credit note names its client already; the client id is extra help when the draft has it.
    client = f" to client {draft.customer_id}" if draft.customer_id else ""
    description = f"{draft.private_note}: refund{client} out of credit note {draft.invoice_id}"
    return (
        f"FreshBooks' API cannot pay money out of a credit note, so the refund of {amount}{client} out of "
        f"credit note {draft.invoice_id} is not recorded in FreshBooks. Record it by "
        "hand: Accounting > Journal Entries > Create Journal Entry (Plus, Premium or Select plan, with "
        f"Advanced Accounting or as an invited accountant), dated {draft.paid_on.isoformat()}, currency "
        f"{draft.currency}: debit Customer Credit {amount}, credit {source} {amount}, description "
        f'"{description}". '
        f"FreshBooks still lists that credit as the client's to use: do not apply credit note "
        f"{draft.invoice_id} to an invoice"
    )


def client_body(name: str, email: str | None, currency: str, reference: str) -> dict[str, Any]:
    # A client's "note" is kept by FreshBooks and shown only to the business: the source customer id.
    body: dict[str, Any] = {"organization": name, "currency_code": currency, "note": reference}
    if email:
        body["email"] = email
    return body


def _id(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def amount_of(value: Any) -> Decimal:
    """A FreshBooks money object (or bare amount) as an exact Decimal."""
    raw = value.get("amount") if isinstance(value, dict) else value
    try:
        return Decimal(str(raw)) if raw not in (None, "") else Decimal(0)
    except DecimalException as exc:
        raise LedgerValidation(f"FreshBooks returned a money amount that is not a number: {raw!r}") from exc


def version(obj: dict[str, Any]) -> str:
    """The invoice's concurrency token: ``updated`` plus a digest of what it holds.

    ``updated`` alone has one-second resolution, so two changes within a second would look like
    none; the digest makes any change of content show.
    """
    canonical = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return f"{obj.get('updated', '')}#{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def marker_of(notes: Any) -> str | None:
    """The invoice-sync marker in an invoice's notes (its last paragraph), else the notes as they are."""
    if not notes:
        return None
    text = str(notes)
    if text.startswith(MARKER_PREFIX):
        return text
    at = text.rfind("\n" + MARKER_PREFIX)
    return text[at + 1 :] if at >= 0 else text


def invoice_document(obj: dict[str, Any], payment_ids: Iterable[str] = ()) -> LedgerDocument:
    return LedgerDocument(
        id=str(obj["id"]),
        version=version(obj),
        number=obj.get("invoice_number"),
        total=amount_of(obj.get("amount")),
        balance=amount_of(obj.get("outstanding")),
        currency=str(obj.get("currency_code") or (obj.get("amount") or {}).get("code") or ""),
        private_note=marker_of(obj.get("notes")),
        # FreshBooks has no void: invoice-sync deletes (vis_state 1), which keeps the invoice in its trash.
        voided=obj.get("vis_state") == 1,
        linked_payment_ids=tuple(payment_ids),
    )


def credit_note_document(obj: dict[str, Any], applied: Decimal = Decimal(0)) -> LedgerDocument:
    total = amount_of(obj.get("amount"))
    return LedgerDocument(
        id=str(obj["id"]),
        version=version(obj),
        number=obj.get("credit_number"),
        total=total,
        balance=total - applied,
        currency=str(obj.get("currency_code") or ""),
        private_note=marker_of(obj.get("notes")),
        voided=obj.get("vis_state") == 1,
    )


def payment_document(obj: dict[str, Any]) -> LedgerDocument:
    amount = obj.get("amount") or {}
    return LedgerDocument(
        id=str(obj["id"]),
        version=version(obj),
        number=None,
        total=amount_of(amount),
        balance=Decimal(0),
        currency=str(amount.get("code", "")) if isinstance(amount, dict) else "",
        private_note=obj.get("note") or None,
        voided=obj.get("vis_state") == 1,
    )


def eastern(value: object) -> datetime | None:
    """A FreshBooks ``updated`` stamp (Eastern wall-clock time, no offset) as an aware datetime;
    None when absent or unreadable."""
    try:
        moment = datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None
    if moment is None:
        return None
    return moment.replace(tzinfo=ACCOUNTING_TZ) if moment.tzinfo is None else moment


def ledger_payment(obj: dict[str, Any]) -> LedgerPayment:
    """A payment as FreshBooks returns it: money on one invoice (``invoiceid``), unless it draws on
    a credit note (``creditid`` / ``from_credit``), which moves credit and applies no money. A
    deleted payment (``vis_state`` 1) reads as voided."""
    amount = obj.get("amount") or {}
    total = amount_of(amount)
    credit = bool(obj.get("from_credit")) or obj.get("creditid") not in (None, "", 0)
    invoice_id = obj.get("invoiceid")
    applications: tuple[PaymentApplication, ...] = ()
    if not credit and invoice_id not in (None, ""):
        applications = (PaymentApplication(str(invoice_id), total),)
    note = obj.get("note") or None
    kind = obj.get("type") or None
    return LedgerPayment(
        id=str(obj["id"]),
        version=version(obj),
        currency=str(amount.get("code", "")) if isinstance(amount, dict) else "",
        total=total,
        paid_on=date.fromisoformat(str(obj["date"])[:10]),
        note=note,
        reference=" ".join(part for part in (kind, note) if part) or None,
        method=kind,
        applications=applications,
        voided=obj.get("vis_state") == 1,
        updated_at=eastern(obj.get("updated")),
    )


def contact(obj: dict[str, Any]) -> LedgerContact:
    return LedgerContact(
        id=str(obj["id"]), name=str(obj.get("organization") or ""), reference=obj.get("note") or None
    )


# --------------------------------------------------------------------------------------------------
# Payouts (design two-way 3.9): FreshBooks' API has no deposit, transfer or bank transaction, so a
# payout's fees are booked as one expense (``expenses/expenses``) and the rest goes on the deposit
# slip. Field names: https://www.freshbooks.com/api/expenses and freshbooks-nodejs-sdk
# ``models/Expense.ts`` (categoryid, staffid, date and amount required; vendor, notes optional).

FEE_VENDOR = "Stripe"
# The business owner's staff id (FreshBooks' expenses need a staffid; the owner is staff 1, as the
# account owner is user 1 in FreshBooks' webhook example) [?: confirm with a live account].
OWNER_STAFF_ID = 1


def fee_notes(draft: DepositDraft) -> str:
    """The expense's notes: the payout's marker, ``fees`` and the deposit number (what find_deposit
    compares exactly, and what a person sees next to the bank line)."""
    return f"{draft.private_note} fees {draft.number}"


def fee_total(draft: DepositDraft) -> Decimal:
    """The payout's fees as a positive amount (fee lines are negative: money out of the bank)."""
    return -sum((line.amount for line in draft.lines if line.kind == "fee"), Decimal(0))


def fee_expense_body(draft: DepositDraft) -> dict[str, Any] | None:
    """The one expense of the payout's fees, or None when it has none to book (no fee line, or
    fees that cancel out). Every fee line must name the same expense category (the connection's
    payout_fee_account), a FreshBooks category id."""
    fees = [line for line in draft.lines if line.kind == "fee"]
    total = fee_total(draft)
    if not fees or total == 0:
        return None
    if total < 0:
        raise Unsupported(
            f"payout {draft.source_id}: its fee lines give back {format(-total, 'f')} {draft.currency} "
            "more than they charge, and a FreshBooks expense cannot be negative: record it by hand",
            code="unsupported",
        )
    categories = {line.account for line in fees}
    if len(categories) != 1 or not (category := next(iter(categories))):
        raise LedgerValidation(
            f"payout {draft.source_id}: its fee lines must all post to one expense category "
            "(the connection's payout_fee_account)",
            code="category",
        )
    if not category.isdigit():
        raise LedgerValidation(
            f"payout_fee_account {category!r} is not a FreshBooks expense category id (a number; "
            "GET expenses/categories lists them)",
            code="category",
        )
    return {
        "amount": money(total, draft.currency),
        "categoryid": int(category),
        "date": draft.arrival_on.isoformat(),
        "vendor": FEE_VENDOR,
        "notes": fee_notes(draft),
        "staffid": OWNER_STAFF_ID,
    }


def fee_expense_search(draft: DepositDraft) -> dict[str, str]:
    """The ``search[...]`` that lists the expenses of the payout's arrival day: ``date_min`` is
    inclusive and ``date_max`` exclusive (FreshBooks' expenses filters), so one day. FreshBooks
    documents no filter on notes: the marker is compared on what comes back."""
    return {
        "date_min": draft.arrival_on.isoformat(),
        "date_max": (draft.arrival_on + timedelta(days=1)).isoformat(),
    }


def no_fee_document(draft: DepositDraft) -> LedgerDocument:
    """What a payout without fees books in FreshBooks: nothing. Its id is the payout's own id (no
    FreshBooks id looks like it), so the deposit still has a ledger id to record."""
    return LedgerDocument(
        id=draft.source_id,
        version=None,
        number=draft.number,
        total=Decimal(0),
        balance=Decimal(0),
        currency=draft.currency,
        private_note=fee_notes(draft),
    )


def expense_document(obj: dict[str, Any]) -> LedgerDocument:
    """An expense as the port's deposit: its amount, the number its notes carry after ``fees``."""
    notes = obj.get("notes") or None
    words = str(notes or "").split()
    number = words[-1] if notes and str(notes).startswith(MARKER_PREFIX) and "fees" in words[:-1] else None
    amount = obj.get("amount")
    return LedgerDocument(
        id=str(obj["id"]),
        version=obj.get("updated"),
        number=number,
        total=amount_of(amount),
        balance=Decimal(0),
        currency=str((amount or {}).get("code", "")) if isinstance(amount, dict) else "",
        private_note=notes,
        voided=obj.get("vis_state") == 1,
    )
