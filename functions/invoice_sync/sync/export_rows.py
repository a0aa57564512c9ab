"""What the export files say, row by row: pure functions of a sync record and its summary.

Amounts are exact decimals in the currency's own number of decimals (JPY 0, USD 2, KWD 3), built
from integer minor units without floats; a record written before push kept summaries has blanks
where the summary would be.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from invoice_sync.models.money import exponent
from invoice_sync.models.summary import DocumentSummary, SummaryLine
from invoice_sync.models.sync import SyncRecord

TAIL = [
    "ledger_id",
    "ledger_number",
    "ledger_total",
    "mapping_version",
    "sync_status",
    "parked_reason",
    "last_error",
    "updated_at",
]
INVOICE_COLUMNS = [
    "source_id",
    "number",
    "issued_on",
    "due_on",
    "customer_id",
    "customer_name",
    "customer_email",
    "currency",
    "subtotal",
    "discount",
    "tax",
    "total",
    "amount_paid",
    "amount_due",
    "status",
    "lines",
    "lines_not_stored",
    *TAIL,
]
LINE_COLUMNS = [
    "invoice_source_id",
    "invoice_number",
    "line_id",
    "description",
    "product_id",
    "quantity",
    "currency",
    "amount",
    "discount",
    "tax",
    "inclusive_tax",
    "net_amount",
    "ledger_item",
    "ledger_account",
    "ledger_tax_code",
    "mapping_version",
    "sync_status",
]
PAYMENT_COLUMNS = [
    "source_id",
    "invoice_source_id",
    "invoice_number",
    "paid_on",
    "customer_id",
    "customer_name",
    "currency",
    "amount",
    "reference",
    *TAIL,
]
CREDIT_NOTE_COLUMNS = [
    "source_id",
    "number",
    "invoice_source_id",
    "issued_on",
    "customer_id",
    "customer_name",
    "currency",
    "subtotal",
    "discount",
    "tax",
    "total",
    "refunded",
    "status",
    *TAIL,
]
REFUND_COLUMNS = [
    "source_id",
    "charge_id",
    "invoice_source_id",
    "refunded_on",
    "customer_id",
    "currency",
    "refunded_so_far",
    *TAIL,
]
# Payments back (issue 7): one row per ``ledger_payment`` record, a payment someone recorded in the
# ledger and mirrored to Stripe (direction "to_source"). ``paid_on`` and ``reference`` come from
# the record's summary and are blank without one; ``stripe_object`` is the Stripe invoice itself
# (``in_…``, paid out of band in full) or the payment record attached to it (``pr_…``, a part);
# ``reason`` says why a record was skipped or parked.
PAYMENTS_BACK_COLUMNS = [
    "ledger",
    "ledger_payment_id",
    "ledger_invoice_id",
    "stripe_invoice_id",
    "stripe_invoice_number",
    "paid_on",
    "reference",
    "currency",
    "amount",
    "stripe_object",
    "sync_status",
    "reason",
    "last_error",
    "updated_at",
]
# Payouts as bank deposits (issue 7, design two-way 3.5.2): one row per line of the ledger deposit
# each ``payout`` record booked (the payout's summary, written by ``sync/payouts.py``): the
# payments and refunds it moved out of the clearing account, the fees, adjustments and unmatched
# money; the line amounts of a payout add up to its bank line. A payout with no lines (skipped,
# parked, or booked before summaries) has one row with the line columns blank and the payout's
# own amount, so that every payout of the day is in the file. ``deposit_ledger_id``: the QBO
# Deposit, the Xero bank transfer, the FreshBooks fee expense; ``line_ledger_id``: the ledger
# payment or refund document a line moves; ``stripe_balance_transaction``: the txn_ it comes from.
DEPOSIT_COLUMNS = [
    "payout_id",
    "payout_reference",
    "arrival_on",
    "ledger",
    "deposit_ledger_id",
    "line_kind",
    "description",
    "currency",
    "amount",
    "line_ledger_id",
    "account",
    "stripe_balance_transaction",
    "sync_status",
    "reason",
    "last_error",
    "updated_at",
]
# Columns holding money (the workbook writes them as numbers in the currency's format).
AMOUNTS = {
    "subtotal",
    "discount",
    "tax",
    "total",
    "amount_paid",
    "amount_due",
    "ledger_total",
    "amount",
    "inclusive_tax",
    "net_amount",
    "refunded",
    "refunded_so_far",
}

# Xero's sales invoice import template (Business > Invoices > Import): one row per line, the
# invoice's fields repeated; * marks the columns Xero requires. Dates as DD/MM/YYYY.
XERO_COLUMNS = [
    "*ContactName",
    "EmailAddress",
    "POAddressLine1",
    "POAddressLine2",
    "POAddressLine3",
    "POAddressLine4",
    "POCity",
    "PORegion",
    "POPostalCode",
    "POCountry",
    "*InvoiceNumber",
    "Reference",
    "*InvoiceDate",
    "*DueDate",
    "Total",
    "InventoryItemCode",
    "*Description",
    "*Quantity",
    "*UnitAmount",
    "Discount",
    "*AccountCode",
    "*TaxType",
    "TaxAmount",
    "TrackingName1",
    "TrackingOption1",
    "TrackingName2",
    "TrackingOption2",
    "Currency",
    "BrandingTheme",
]
# QuickBooks Online's invoice import (Settings > Import data > Invoices), the column names it maps
# by itself: InvoiceNo, Customer, InvoiceDate, DueDate and ItemAmount are required (ItemTaxCode
# too where the company charges tax). Dates as MM/DD/YYYY (pick that format when importing).
QUICKBOOKS_COLUMNS = [
    "InvoiceNo",
    "Customer",
    "InvoiceDate",
    "DueDate",
    "Terms",
    "Location",
    "Memo",
    "Item(Product/Service)",
    "ItemDescription",
    "ItemQuantity",
    "ItemRate",
    "ItemAmount",
    "ItemTaxCode",
    "ItemTaxAmount",
    "Currency",
    "Service Date",
]
# Xero takes unit amounts to 4 decimals; QBO rates to 5 (we keep 4 for both).
UNIT_PLACES = 4


@lru_cache(maxsize=256)
def _exponent(currency: str) -> int:
    return exponent(currency)


def _decimal(scaled: int, places: int) -> str:
    if places == 0:
        return str(scaled)
    sign = "-" if scaled < 0 else ""
    whole, part = divmod(abs(scaled), 10**places)
    return f"{sign}{whole}.{part:0{places}d}"


def money(minor: int | None, currency: str | None) -> str:
    """``minor`` units as an exact decimal with the currency's decimals; blank when unknown.

    The same figure as ``Money(minor, currency).to_decimal()``, built with integer arithmetic only
    (an export formats millions of them).
    """
    if minor is None or not currency:
        return ""
    return _decimal(minor, _exponent(currency))


def unit_price(net_minor: int, quantity: int, currency: str) -> tuple[str, str]:
    """(quantity, unit price) whose product is exactly the line's net amount; one unit of the
    whole amount where no price of ``UNIT_PLACES`` decimals multiplies back (usage billing)."""
    places = _exponent(currency)
    shift = UNIT_PLACES - places
    if quantity > 1 and shift >= 0 and (net_minor * 10**shift) % quantity == 0:
        whole, _, fraction = _decimal(net_minor * 10**shift // quantity, UNIT_PLACES).partition(".")
        fraction = fraction.rstrip("0").ljust(places, "0")
        return str(quantity), f"{whole}.{fraction}" if fraction else whole
    return "1", money(net_minor, currency)


# What a spreadsheet reads as the start of a formula (CSV injection): such a text cell gets a
# leading apostrophe, which spreadsheets show as text and hide. Money never goes through here.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def as_typed(cell: str) -> str:
    """A text cell as the customer typed it, without the apostrophe ``_text`` put before text a
    spreadsheet would read as a formula (for outputs that mark text as text themselves)."""
    return cell[1:] if cell.startswith("'") and cell[1:2] in _FORMULA_START else cell


def _text(value: object) -> str:
    """A text cell: what a customer typed (a name, a description) must never run as a formula when
    an accountant opens the CSV."""
    if value is None:
        return ""
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def _day(value: date | None) -> str:
    return value.isoformat() if value else ""


def parked_reason(record: SyncRecord) -> str:
    """The short reason a parked record waits (what its alert was de-duplicated on)."""
    if not record.status.parked:
        return ""
    return record.alerted_reason or (record.last_error or "unknown").split(":", 1)[0]


def _tail(record: SyncRecord) -> list[str]:
    return [
        _text(record.ledger_id),
        _text(record.ledger_number),
        money(record.ledger_total, record.currency),
        _text(record.mapping_version),
        record.status.value,
        parked_reason(record),
        _text(record.last_error),
        record.updated_at.isoformat() if record.updated_at else "",
    ]


def invoice_row(record: SyncRecord, summary: DocumentSummary | None) -> list[str]:
    s = summary or DocumentSummary()
    currency = record.currency
    total = s.total if s.total is not None else record.source_total
    due = total - s.amount_paid if total is not None and s.amount_paid is not None else None
    return [
        record.source_id,
        _text(record.source_number),
        _day(s.issued_on),
        _day(s.due_on),
        _text(s.customer_id),
        _text(s.customer_name),
        _text(s.customer_email),
        _text(currency),
        money(s.subtotal, currency),
        money(s.discount, currency),
        money(s.tax, currency),
        money(total, currency),
        money(s.amount_paid, currency),
        money(due, currency),
        _text(s.status),
        str(len(s.lines)) if summary else "",
        str(s.lines_dropped) if s.lines_dropped else "",
        *_tail(record),
    ]


def line_rows(record: SyncRecord, summary: DocumentSummary | None) -> list[list[str]]:
    if summary is None:
        return []
    currency = record.currency
    return [
        [
            record.source_id,
            _text(record.source_number),
            line.source_id,
            _text(line.description),
            _text(line.product_id),
            str(line.quantity),
            _text(currency),
            money(line.amount, currency),
            money(line.discount, currency),
            money(line.tax, currency),
            money(line.inclusive_tax, currency),
            money(line.net, currency),
            _text(line.ledger_item),
            _text(line.ledger_account),
            _text(line.ledger_tax_code),
            _text(record.mapping_version),
            record.status.value,
        ]
        for line in summary.lines
    ]


def payment_row(record: SyncRecord, summary: DocumentSummary | None) -> list[str]:
    s = summary or DocumentSummary()
    return [
        record.source_id,
        _text(s.invoice_source_id),
        _text(s.invoice_number or record.source_number),
        _day(s.issued_on),
        _text(s.customer_id),
        _text(s.customer_name),
        _text(record.currency),
        money(record.source_total, record.currency),
        _text(s.reference),
        *_tail(record),
    ]


def credit_note_row(record: SyncRecord, summary: DocumentSummary | None) -> list[str]:
    s = summary or DocumentSummary()
    currency = record.currency
    return [
        record.source_id,
        _text(record.source_number),
        _text(s.invoice_source_id),
        _day(s.issued_on),
        _text(s.customer_id),
        _text(s.customer_name),
        _text(currency),
        money(s.subtotal, currency),
        money(s.discount, currency),
        money(s.tax, currency),
        money(s.total if s.total is not None else record.source_total, currency),
        money(s.amount_paid, currency),
        _text(s.status),
        *_tail(record),
    ]


def refund_row(record: SyncRecord, summary: DocumentSummary | None) -> list[str]:
    s = summary or DocumentSummary()
    return [
        record.source_id,
        _text(s.reference or record.source_number),
        _text(s.invoice_source_id),
        _day(s.issued_on),
        _text(s.customer_id),
        _text(record.currency),
        money(record.source_total, record.currency),
        *_tail(record),
    ]


def back_reason(record: SyncRecord) -> str:
    """Why a ``ledger_payment`` record did not (or not yet) reach Stripe: a skipped record's
    reason (``invoice not from the source``, ...), a parked one's short reason; blank otherwise."""
    if record.status.parked:
        return parked_reason(record)
    if record.status.value == "skipped":
        return record.last_error or ""
    return ""


def payments_back_row(record: SyncRecord, summary: DocumentSummary | None, ledger: str) -> list[str]:
    """A ``ledger_payment`` record: ledger payment id in ``ledger_id``, the ledger invoice it pays
    in ``ledger_number``, the amount applied to that invoice in ``ledger_total`` (minor units)."""
    s = summary or DocumentSummary()
    payment_id = record.ledger_id or record.source_id.partition(":")[0]
    invoice_id = record.ledger_number or record.source_id.partition(":")[2]
    return [
        _text(ledger),
        _text(payment_id),
        _text(invoice_id),
        _text(record.source_target or s.invoice_source_id),
        _text(record.source_number or s.invoice_number),
        _day(s.issued_on),
        _text(s.reference),
        _text(record.currency),
        money(record.ledger_total, record.currency),
        _text(record.stripe_object),
        record.status.value,
        _text(back_reason(record)),
        _text(record.last_error),
        record.updated_at.isoformat() if record.updated_at else "",
    ]


def payout_summary(record: SyncRecord) -> dict[str, Any] | None:
    """A ``payout`` record's summary (``payouts._summary``: payout, number, arrival_on, currency,
    total, fees, unmatched, lines); None without one or one this version cannot read."""
    if not record.summary:
        return None
    try:
        found = json.loads(record.summary)
    except ValueError:
        return None
    if not isinstance(found, dict) or not isinstance(found.get("lines", []), list):
        return None
    return found


def decimal_money(text: object, currency: str | None) -> str:
    """A decimal amount as the summary keeps it (``"-49.26"``) in the export's money format: the
    currency's own decimals, exact. An amount with more decimals than the currency has is written
    whole (never rounded); blank when there is none."""
    if text is None or text == "" or not currency:
        return ""
    try:
        amount = Decimal(str(text))
    except InvalidOperation as error:
        raise ValueError(f"not an amount: {text!r}") from error
    scaled = amount.scaleb(_exponent(currency))
    if scaled != scaled.to_integral_value():
        return format(amount, "f")
    return money(int(scaled), currency)


def payout_reason(record: SyncRecord) -> str:
    """Why a payout was not booked, or booked only in part: a skipped record's reason (``not paid
    yet (in_transit)``, ``manual payout: ...``), a parked one's short reason, and for a synced one
    the note push left (FreshBooks: ``deposit slip only: FreshBooks has no deposit API``)."""
    if record.status.parked:
        return parked_reason(record)
    return record.last_error or ""


def deposit_rows(record: SyncRecord, ledger: str) -> list[list[str]]:
    """A ``payout`` record as rows of deposits.csv: one per line of its deposit, or one row with
    the payout's own amount and the line columns blank when it has no lines."""
    summary = payout_summary(record) or {}
    currency = str(summary.get("currency") or record.currency or "")
    head = [
        _text(summary.get("payout") or record.source_id),
        _text(summary.get("number") or record.source_number),
        _text(summary.get("arrival_on")),
        _text(ledger),
        _text(record.ledger_id),
    ]
    tail = [
        record.status.value,
        _text(payout_reason(record)),
        _text(record.last_error),
        record.updated_at.isoformat() if record.updated_at else "",
    ]
    lines = [line for line in summary.get("lines") or [] if isinstance(line, dict)]
    if not lines:
        return [[*head, "", "", _text(currency), money(record.source_total, currency), "", "", "", *tail]]
    return [
        [
            *head,
            _text(line.get("kind")),
            _text(line.get("description")),
            _text(currency),
            decimal_money(line.get("amount"), currency),
            _text(line.get("ledger_id")),
            _text(line.get("account")),
            _text(line.get("source_id")),
            *tail,
        ]
        for line in lines
    ]


# --- the ledgers' own import layouts --------------------------------------------------------------


def importable(record: SyncRecord, summary: DocumentSummary | None) -> bool:
    """An invoice the import files carry: finalized (not a draft, not void), with its lines."""
    return (
        record.kind == "invoice"
        and summary is not None
        and summary.status not in {None, "draft", "void"}
        and summary.issued_on is not None
        and bool(summary.lines)
        and not summary.lines_dropped
        and bool(record.currency)
    )


def _import_lines(summary: DocumentSummary) -> list[SummaryLine]:
    """The lines as the ledger imports them: net of their discounts, plus one line for a
    discount the source did not spread over the lines, so that the lines add up to the total."""
    lines = list(summary.lines)
    spread = sum(line.discount for line in lines)
    rest = (summary.discount or 0) - spread
    if rest:
        lines.append(SummaryLine("discount", "Discount", None, 1, -rest, 0, 0, 0))
    return lines


def _dates(summary: DocumentSummary) -> tuple[date, date]:
    """(issued, due) of an importable invoice: the ledgers require a due date, so the issue date
    stands in where the source has none (an invoice charged automatically)."""
    if summary.issued_on is None:
        raise ValueError("an invoice without an issue date cannot be imported")
    return summary.issued_on, summary.due_on or summary.issued_on


def xero_rows(record: SyncRecord, summary: DocumentSummary) -> list[list[str]]:
    currency = record.currency or ""
    issued, due = _dates(summary)
    rows = []
    for line in _import_lines(summary):
        quantity, unit = unit_price(line.net, line.quantity, currency)
        rows.append(
            [
                summary.customer_name or summary.customer_id or "",
                _text(summary.customer_email),
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                _text(record.source_number),
                record.source_id,
                f"{issued:%d/%m/%Y}",
                f"{due:%d/%m/%Y}",
                money(summary.total, currency),
                _text(line.ledger_item),
                _text(line.description or line.source_id),
                quantity,
                unit,
                "",  # Xero's Discount is a percentage: the unit amount is already net of it
                _text(line.ledger_account),
                _text(line.ledger_tax_code),
                money(line.tax, currency),
                "",
                "",
                "",
                "",
                currency,
                "",
            ]
        )
    return rows


def quickbooks_rows(record: SyncRecord, summary: DocumentSummary) -> list[list[str]]:
    currency = record.currency or ""
    issued, due = _dates(summary)
    rows = []
    for line in _import_lines(summary):
        quantity, unit = unit_price(line.net, line.quantity, currency)
        rows.append(
            [
                _text(record.source_number),
                summary.customer_name or summary.customer_id or "",
                f"{issued:%m/%d/%Y}",
                f"{due:%m/%d/%Y}",
                "",
                "",
                record.source_id,
                _text(line.ledger_item),
                _text(line.description),
                quantity,
                unit,
                money(line.net, currency),
                _text(line.ledger_tax_code),
                money(line.tax, currency),
                currency,
                "",
            ]
        )
    return rows
