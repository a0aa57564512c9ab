"""The export-ready summary push keeps on each sync record: what the nightly export writes.

A sync record alone says what was pushed (ids, status, totals); the accountant's files also need
the dates, the customer, the subtotal, discount and tax, what was paid, and every line with the
ledger item, account and tax code it was posted to. Push stores that here, as compact JSON (short
keys, lines as arrays), whenever it saves the record, synced or parked.

DynamoDB refuses items over 400 KB. A summary over ``MAX_SUMMARY_BYTES`` keeps its header and
drops its lines, counting them in ``lines_dropped``: the export then writes the document's row
with its totals and says how many lines it could not list, instead of push failing the invoice.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from invoice_sync.ledgers.port import InvoiceDraft
    from invoice_sync.models.documents import CreditNote, Invoice, Payment, Refund

# Well under DynamoDB's 400 KB item limit, leaving room for the record's other attributes (the
# refunds tally and line products of a large invoice among them).
MAX_SUMMARY_BYTES = 200_000


class SummaryLine(NamedTuple):
    """One line, stored as a JSON array (a name per value would double the item's size)."""

    source_id: str
    description: str
    product_id: str | None
    quantity: int
    amount: int  # minor units, before the line's discount; includes inclusive taxes
    discount: int
    tax: int  # every tax on the line
    inclusive_tax: int  # the part of ``tax`` already inside ``amount``
    ledger_item: str | None = None
    ledger_account: str | None = None
    ledger_tax_code: str | None = None

    @property
    def net(self) -> int:
        """What the line adds before tax, after its discount."""
        return self.amount - self.inclusive_tax - self.discount


class DocumentSummary(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    status: str | None = Field(default=None, alias="st")  # the source's status (open, paid, void...)
    issued_on: date | None = Field(default=None, alias="iss")  # payments: paid on; refunds: refunded on
    due_on: date | None = Field(default=None, alias="due")
    customer_id: str | None = Field(default=None, alias="cid")
    customer_name: str | None = Field(default=None, alias="cn")
    customer_email: str | None = Field(default=None, alias="ce")
    subtotal: int | None = Field(default=None, alias="sub")
    discount: int | None = Field(default=None, alias="dis")
    tax: int | None = Field(default=None, alias="tax")
    total: int | None = Field(default=None, alias="tot")
    amount_paid: int | None = Field(default=None, alias="paid")  # credit notes: refunded as money
    invoice_source_id: str | None = Field(default=None, alias="inv")  # what a payment or credit is for
    invoice_number: str | None = Field(default=None, alias="invn")
    reference: str | None = Field(default=None, alias="ref")  # payments: reference; refunds: charge
    lines: tuple[SummaryLine, ...] = Field(default=(), alias="ln")
    lines_dropped: int = Field(default=0, alias="lx")

    def dump(self) -> str:
        """The stored form; lines are dropped (and counted) when it would be too large."""
        text = self.model_dump_json(by_alias=True, exclude_defaults=True)
        if len(text.encode()) > MAX_SUMMARY_BYTES:
            dropped = self.model_copy(update={"lines": (), "lines_dropped": len(self.lines)})
            text = dropped.model_dump_json(by_alias=True, exclude_defaults=True)
        return text

    @classmethod
    def load(cls, text: str | None) -> DocumentSummary | None:
        """The stored summary, or None for a record without one (or one this version cannot read)."""
        if not text:
            return None
        try:
            return cls.model_validate_json(text)
        except ValidationError:
            return None


def _lines(document: Invoice | CreditNote, draft: InvoiceDraft | None) -> tuple[SummaryLine, ...]:
    # The resolver maps line by line, in order; a draft of another length (a parked invoice has
    # none) gives no ledger codes rather than wrong ones.
    drafted = draft.lines if draft is not None and len(draft.lines) == len(document.lines) else None
    lines = []
    for index, line in enumerate(document.lines):
        ledger = drafted[index] if drafted else None
        lines.append(
            SummaryLine(
                line.source_id,
                line.description,
                line.product_id,
                line.quantity,
                line.amount,
                line.discount,
                sum(t.amount for t in line.taxes),
                sum(t.amount for t in line.taxes if t.inclusive),
                ledger.item_id if ledger else None,
                ledger.account if ledger else None,
                ledger.tax_code if ledger else None,
            )
        )
    return tuple(lines)


def invoice_summary(invoice: Invoice, draft: InvoiceDraft | None = None) -> str:
    return DocumentSummary(
        status=invoice.status.value,
        issued_on=invoice.issued_on,
        due_on=invoice.due_on,
        customer_id=invoice.customer.source_id,
        customer_name=invoice.customer.display_name,
        customer_email=invoice.customer.email,
        subtotal=invoice.subtotal,
        discount=invoice.discount,
        tax=invoice.tax,
        total=invoice.total,
        amount_paid=invoice.amount_paid,
        lines=_lines(invoice, draft),
    ).dump()


def credit_note_summary(note: CreditNote, draft: InvoiceDraft | None = None) -> str:
    return DocumentSummary(
        status=note.status.value,
        issued_on=note.issued_on,
        customer_id=note.customer.source_id,
        customer_name=note.customer.display_name,
        customer_email=note.customer.email,
        subtotal=note.subtotal,
        discount=note.discount,
        tax=note.tax,
        total=note.total,
        amount_paid=note.refunded,
        invoice_source_id=note.invoice_source_id,
        lines=_lines(note, draft),
    ).dump()


def payment_summary(payment: Payment, invoice: Invoice) -> str:
    return DocumentSummary(
        issued_on=payment.paid_on,
        customer_id=invoice.customer.source_id,
        customer_name=invoice.customer.display_name,
        customer_email=invoice.customer.email,
        total=payment.amount,
        invoice_source_id=invoice.source_id,
        invoice_number=invoice.number,
        reference=payment.reference,
    ).dump()


def refund_summary(refund: Refund) -> str:
    return DocumentSummary(
        issued_on=refund.refunded_on,
        customer_id=refund.customer_id,
        total=refund.total,
        invoice_source_id=refund.invoice_source_id,
        reference=refund.charge_id,
    ).dump()
