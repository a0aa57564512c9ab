"""Source documents, normalised: what an invoicing platform says a document is, in exact money.

These are the snapshots that travel on the sync queue. ``push`` makes the ledger match one.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from invoice_sync.models.money import Currency, Money

# The invoicing platforms a webhook can come from: Stripe, or any system posting the generic
# schema (schemas/generic-webhook.schema.json).
SourceKind = Literal["stripe", "generic"]


class InvoiceStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    UNCOLLECTIBLE = "uncollectible"
    VOID = "void"


# Lifecycle order, so that two snapshots stamped in the same second still order correctly
# (Stripe sends invoice.finalized and invoice.paid with the same `created` for instant payments).
STATUS_RANK: dict[InvoiceStatus, int] = {
    InvoiceStatus.DRAFT: 0,
    InvoiceStatus.OPEN: 1,
    InvoiceStatus.PAID: 2,
    InvoiceStatus.UNCOLLECTIBLE: 2,
    InvoiceStatus.VOID: 3,
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Customer(_Frozen):
    source_id: str
    name: str | None = None
    email: str | None = None

    @property
    def display_name(self) -> str:
        """What a ledger shows; falls back to the e-mail, then the source id, never empty."""
        return next((v.strip() for v in (self.name, self.email) if v and v.strip()), self.source_id)


class LineTax(_Frozen):
    """One tax on one line: the rate's source id, the amount and whether the line amount includes it."""

    rate_id: str
    amount: int
    inclusive: bool = False
    taxable_amount: int | None = None


class LineItem(_Frozen):
    source_id: str
    description: str
    product_id: str | None
    quantity: int
    # Line amount in minor units before discounts; excludes tax unless a tax on it is inclusive.
    amount: int
    discount: int = 0
    taxes: tuple[LineTax, ...] = ()
    # On a credit note: the invoice line it credits (its product is the invoice line's).
    invoice_line_id: str | None = None


class Payment(_Frozen):
    """Money received against one invoice. ``source_id`` is stable across deliveries."""

    source_id: str
    invoice_source_id: str
    amount: int
    currency: Currency
    paid_on: date
    reference: str | None = None
    # The Stripe charge and payment intent that carried the money, so that a refund of that charge
    # finds the invoice it gives money back on (current-shape charges do not name their invoice).
    charges: tuple[str, ...] = ()
    # True when ``amount`` is the invoice's paid total so far rather than one payment: push then
    # books only what the ledger does not have yet.
    cumulative: bool = False
    # The Stripe payment record (``pr_...``) this payment is, when it is money recorded off Stripe
    # (payments back's partial payments): push skips one that is linked to a ledger payment.
    payment_record: str | None = None


def _digest(shape: dict[str, object]) -> str:
    canonical = json.dumps(shape, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Lined(_Frozen):
    """What invoices and credit notes share: a customer, lines, and totals the source computed."""

    source: SourceKind = "stripe"
    source_id: str
    number: str | None
    currency: Currency
    customer: Customer
    issued_on: date
    lines: tuple[LineItem, ...]
    # False when the webhook carried only the first page of lines (Stripe's ``has_more``).
    lines_complete: bool = True
    subtotal: int
    discount: int = 0
    tax: int = 0
    total: int
    memo: str | None = None

    def money(self, minor: int) -> Money:
        return Money(minor=minor, currency=self.currency)

    @property
    def exclusive_tax(self) -> int:
        return sum(t.amount for line in self.lines for t in line.taxes if not t.inclusive)

    def _shape_hash(self, exclude: set[str], void: bool) -> str:
        shape = self.model_dump(mode="json", exclude=exclude)
        shape["void"] = void
        return _digest(shape)


class Invoice(_Lined):
    status: InvoiceStatus
    due_on: date | None = None
    amount_paid: int = 0
    payments: tuple[Payment, ...] = ()

    def content_hash(self) -> str:
        """Hash of what shapes the ledger invoice, so a snapshot that changes nothing there is a no-op.

        Payments are left out (they are documents of their own), and so is the status except for
        a void: an invoice going from open to paid does not need the ledger invoice rewritten.
        """
        return self._shape_hash({"payments", "amount_paid", "status"}, self.status is InvoiceStatus.VOID)


class CreditNoteStatus(StrEnum):
    ISSUED = "issued"
    VOID = "void"


class CreditNote(_Lined):
    """Money taken back from an invoice: lines, tax and total as the source computed them."""

    status: CreditNoteStatus
    invoice_source_id: str | None
    refunded: int = 0  # of the total, how much went back as money
    # Of the total, how much reduces what the invoice still owes (Stripe's pre_payment_amount);
    # the rest was refunded, credited to the customer's balance or settled outside Stripe.
    for_invoice: int = 0

    def content_hash(self) -> str:
        return self._shape_hash({"status", "refunded"}, self.status is CreditNoteStatus.VOID)


class Refund(_Frozen):
    """Money returned on a charge: Stripe's running ``amount_refunded``, like cumulative payments,
    so each new amount is a new record and the same refund reported twice is one."""

    source: SourceKind = "stripe"
    source_id: str
    charge_id: str
    currency: Currency
    customer_id: str | None
    invoice_source_id: str | None  # only the pre-2025-03-31 Charge names its invoice
    payment_intent: str | None = None  # how a current-shape charge is tied to its invoice's payment
    refunded_on: date
    refunded_at: int = 0  # the event's time (Unix seconds): how long its credit note has had to arrive
    total: int  # refunded so far on the charge

    @property
    def number(self) -> str | None:
        return self.charge_id

    def money(self, minor: int) -> Money:
        return Money(minor=minor, currency=self.currency)

    def content_hash(self) -> str:
        return _digest(self.model_dump(mode="json"))


PayoutStatus = Literal["paid", "pending", "in_transit", "canceled", "failed"]
ReconciliationStatus = Literal["completed", "in_progress", "not_applicable"]

# Lifecycle order of a payout's snapshots (design two-way 3.5.2): pending < in_transit < paid <
# failed | canceled ("Some payouts that fail might initially show as paid, then change to failed",
# stripe-python ``_payout.py``). Even numbers, so that ``reconciliation_status: completed`` adds one
# within its status: payout.paid and payout.reconciliation_completed stamped in the same second
# still order, the completed one last.
PAYOUT_RANK: dict[str, int] = {"pending": 0, "in_transit": 2, "paid": 4, "failed": 8, "canceled": 8}


class Payout(_Frozen):
    """Money Stripe sent to the bank (a ``po_...``): what becomes one ledger deposit (design two-way
    3.5.2). Not a ``Document``: it has no customer, lines or invoice, and push handles it apart."""

    source: SourceKind = "stripe"
    source_id: str = Field(pattern=r"^po_")
    # Minor units of ``currency``, what lands on the bank line; zero or less when Stripe debits the
    # bank (a negative balance reclaimed), which push parks rather than books.
    amount: int
    currency: Currency
    arrival_on: date  # the day the bank receives it (Stripe's ``arrival_date``)
    # True when Stripe's schedule made it; only then can Stripe say which transactions it settles.
    automatic: bool
    status: PayoutStatus
    reconciliation_status: ReconciliationStatus
    balance_transaction: str | None  # the payout's own txn_..., excluded from the deposit's lines
    destination: str | None  # ba_... (bank account) or card_..., for the bank-account mapping
    created: int  # the event's time (Unix seconds), as ``Refund.refunded_at``

    @property
    def number(self) -> str:
        """The reference the ledger deposit carries (and is found by): ``PO-`` and the id's last 18
        characters (the random part), so it fits QuickBooks' 21-character DocNumber."""
        return f"PO-{self.source_id[3:][-18:]}"

    @property
    def total(self) -> int:
        return self.amount

    def money(self, minor: int) -> Money:
        return Money(minor=minor, currency=self.currency)

    def content_hash(self) -> str:
        """Hash of what shapes the deposit and its fate: everything but the event time."""
        return _digest(self.model_dump(mode="json", exclude={"created"}))


Document = Invoice | CreditNote | Refund
Billed = Invoice | CreditNote  # documents with lines, mapped line by line onto the ledger
Subject = Document | Payout  # what one source event is about


class SourceEvent(_Frozen):
    """An accepted webhook event, normalised. ``version`` orders snapshots of one object."""

    source: SourceKind = "stripe"
    event_id: str
    event_type: str
    created: int
    invoice: Invoice | None = None
    credit_note: CreditNote | None = None
    refund: Refund | None = None
    payout: Payout | None = None  # Stripe payout.* events (not a Document: see ``subject``)
    # A sender's own ordering of snapshots (the generic source's ``version``); when absent, event
    # time and lifecycle order them.
    explicit_version: int | None = None

    def model_post_init(self, _context: object, /) -> None:
        carried = (self.invoice, self.credit_note, self.refund, self.payout)
        if sum(d is not None for d in carried) != 1:
            raise ValueError(
                "an event carries exactly one subject: an invoice, a credit note, a refund or a payout"
            )

    @property
    def subject(self) -> Subject:
        """What the event is about: its document, or its payout."""
        subject = self.invoice or self.credit_note or self.refund or self.payout
        assert subject is not None
        return subject

    @property
    def document(self) -> Document:
        """The event's invoice, credit note or refund. A payout event has none: ``TypeError``
        (read ``subject`` or ``payout`` where a payout may come)."""
        document = self.invoice or self.credit_note or self.refund
        if document is None:
            raise TypeError(f"event {self.event_id} ({self.event_type}) is a payout's, not a document's")
        return document

    @property
    def version(self) -> int:
        if self.explicit_version is not None:
            return self.explicit_version
        return version_of(self.created, self.subject)


def version_of(created: int, document: Subject) -> int:
    """Orders snapshots of one document: event time first, then lifecycle, so two events stamped
    in the same second (finalized and paid, for an instant payment) still order correctly."""
    if isinstance(document, Payout):
        rank = PAYOUT_RANK[document.status] + (document.reconciliation_status == "completed")
    elif isinstance(document, Invoice):
        rank = STATUS_RANK[document.status]
    elif isinstance(document, CreditNote):
        rank = 3 if document.status is CreditNoteStatus.VOID else 1
    else:
        rank = 1
    return created * 10 + rank
