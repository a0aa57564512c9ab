"""Stripe: ``Stripe-Signature`` verification and invoice events parsed into the domain models.

Both Invoice shapes are read: the current one (API 2025-03-31.basil and later: ``total_taxes``,
``payments``, ``pricing``, line ``taxes``) and the earlier one (``tax``, ``total_tax_amounts``,
``paid``, ``charge``, ``price``, line ``tax_amounts``). The endpoint's pinned API version decides
which one arrives, and a company may move between them at any time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from invoice_sync.errors import InvalidPayload
from invoice_sync.models.documents import (
    CreditNote,
    CreditNoteStatus,
    Customer,
    Invoice,
    InvoiceStatus,
    LineItem,
    LineTax,
    Payment,
    Payout,
    PayoutStatus,
    ReconciliationStatus,
    Refund,
    SourceEvent,
)
from invoice_sync.sources import signing
from invoice_sync.sources.validation import describe

SIGNATURE_HEADER = "stripe-signature"

HANDLED_EVENTS = frozenset(
    {
        "invoice.finalized",
        "invoice.updated",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.voided",
        "invoice.marked_uncollectible",
        "credit_note.created",
        "credit_note.updated",
        "credit_note.voided",
        # Every refund, partial or full, fires charge.refunded with the charge's running total;
        # refund.created for the same money would be a second report, so it is not handled.
        "charge.refunded",
        # Payouts become ledger deposits (design two-way 3.5.2). payout.paid says the money left
        # Stripe; payout.reconciliation_completed that its balance transactions can be listed
        # (https://docs.stripe.com/payouts/reconciliation); failed and canceled undo a paid one.
        "payout.paid",
        "payout.reconciliation_completed",
        "payout.failed",
        "payout.canceled",
    }
)


# --- signature ------------------------------------------------------------------------------------


sign = signing.sign
signature_header = signing.signature_header


def verify_signature(
    payload: bytes, header: str | None, secrets: Sequence[str], *, now: float, tolerance: int
) -> None:
    """Stripe-Signature: Stripe's recipe, checked as ``sources.signing`` describes."""
    signing.verify(payload, header, secrets, now=now, tolerance=tolerance, name="Stripe-Signature")


# --- input models (what Stripe sends; extra fields ignored, kept apart from the domain) -----------


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _TaxRateDetails(_In):
    tax_rate: str | dict[str, Any] | None = None


class _LineTaxCurrent(_In):
    amount: int
    tax_behavior: str = "exclusive"
    tax_rate_details: _TaxRateDetails | None = None
    taxable_amount: int | None = None


class _LineTaxLegacy(_In):
    amount: int
    inclusive: bool = False
    tax_rate: str | dict[str, Any] | None = None
    taxable_amount: int | None = None


class _DiscountAmount(_In):
    amount: int


class _PriceDetails(_In):
    product: str | dict[str, Any] | None = None


class _Pricing(_In):
    price_details: _PriceDetails | None = None


class _Price(_In):
    product: str | dict[str, Any] | None = None


class _Line(_In):
    id: str
    amount: int
    description: str | None = None
    quantity: int | None = None
    pricing: _Pricing | None = None
    price: _Price | None = None
    taxes: list[_LineTaxCurrent] | None = None
    tax_amounts: list[_LineTaxLegacy] | None = None
    discount_amounts: list[_DiscountAmount] | None = None
    invoice_line_item: str | None = None  # credit note lines: the invoice line credited


class _Lines(_In):
    data: list[_Line]
    has_more: bool = False


class _Transitions(_In):
    finalized_at: int | None = None
    paid_at: int | None = None


class _InvoicePaymentTransitions(_In):
    paid_at: int | None = None


class _PaymentRef(_In):
    type: str | None = None
    payment_intent: str | dict[str, Any] | None = None
    charge: str | dict[str, Any] | None = None
    # ``type == "payment_record"``: money recorded off Stripe (payments back's partial payments).
    payment_record: str | dict[str, Any] | None = None


class _InvoicePayment(_In):
    id: str
    payment: _PaymentRef | None = None
    amount_paid: int | None = None
    status: str
    created: int
    status_transitions: _InvoicePaymentTransitions | None = None


class _InvoicePayments(_In):
    data: list[_InvoicePayment] = Field(default_factory=list)


class _StripeInvoice(_In):
    id: str = Field(pattern=r"^in_")
    number: str | None = None
    status: InvoiceStatus
    currency: str = Field(min_length=3, max_length=3)
    customer: str | dict[str, Any]
    customer_name: str | None = None
    customer_email: str | None = None
    created: int
    effective_at: int | None = None
    due_date: int | None = None
    description: str | None = None
    status_transitions: _Transitions | None = None
    lines: _Lines
    subtotal: int
    total: int
    amount_paid: int = 0
    total_discount_amounts: list[_DiscountAmount] | None = None
    # current shape
    total_taxes: list[_LineTaxCurrent] | None = None
    payments: _InvoicePayments | None = None
    # pre-2025-03-31 shape
    tax: int | None = None
    paid: bool | None = None
    charge: str | dict[str, Any] | None = None
    payment_intent: str | dict[str, Any] | None = None


class _CreditNoteRefund(_In):
    amount_refunded: int = 0


class _StripeCreditNote(_In):
    id: str = Field(pattern=r"^cn_")
    number: str | None = None
    status: CreditNoteStatus
    currency: str = Field(min_length=3, max_length=3)
    customer: str | dict[str, Any]
    invoice: str | dict[str, Any] | None = None
    created: int
    effective_at: int | None = None
    lines: _Lines
    subtotal: int
    total: int
    discount_amounts: list[_DiscountAmount] | None = None
    memo: str | None = None
    # current shape
    total_taxes: list[_LineTaxCurrent] | None = None
    refunds: list[_CreditNoteRefund] | None = None
    # pre-2025-03-31 shape
    tax_amounts: list[_LineTaxLegacy] | None = None
    refund: str | dict[str, Any] | None = None
    out_of_band_amount: int | None = None
    type: str | None = None  # pre_payment | post_payment | mixed
    pre_payment_amount: int | None = None


class _StripeCharge(_In):
    id: str = Field(pattern=r"^(ch|py)_")
    amount_refunded: int
    currency: str = Field(min_length=3, max_length=3)
    customer: str | dict[str, Any] | None = None
    invoice: str | dict[str, Any] | None = None  # pre-2025-03-31 only
    payment_intent: str | dict[str, Any] | None = None
    created: int


# 9999-12-31T23:59:59Z: the last Unix time a ``date`` can hold.
LAST_TIMESTAMP = 253_402_300_799


class _StripePayout(_In):
    """A Payout (stripe-python ``_payout.py``): ``arrival_date`` and ``created`` are Unix seconds,
    ``balance_transaction`` and ``destination`` expandable ids."""

    id: str = Field(pattern=r"^po_")
    object: str = Field(default="payout", pattern=r"^payout$")
    amount: int
    currency: str = Field(min_length=3, max_length=3)
    arrival_date: int = Field(ge=0, le=LAST_TIMESTAMP)
    automatic: bool
    status: PayoutStatus
    reconciliation_status: ReconciliationStatus
    balance_transaction: str | dict[str, Any] | None = None
    destination: str | dict[str, Any] | None = None


class _EventData(_In):
    object: dict[str, Any]


class _StripeEvent(_In):
    id: str = Field(pattern=r"^evt_")
    object: str = "event"
    type: str
    created: int
    data: _EventData


# --- parsing --------------------------------------------------------------------------------------


def _ids(*values: str | dict[str, Any] | None) -> tuple[str, ...]:
    """The ids among ``values`` that are present, in order."""
    return tuple(found for found in map(_id, values) if found)


def _id(value: str | dict[str, Any] | None) -> str | None:
    """An id, whether Stripe sent it bare or expanded into its object."""
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value


def _day(timestamp: int) -> date:
    return datetime.fromtimestamp(timestamp, UTC).date()


def _line(raw: _Line, invoice_id: str) -> LineItem:
    if raw.taxes is not None:
        taxes = tuple(
            LineTax(
                rate_id=_id(t.tax_rate_details.tax_rate if t.tax_rate_details else None) or "automatic",
                amount=t.amount,
                inclusive=t.tax_behavior == "inclusive",
                taxable_amount=t.taxable_amount,
            )
            for t in raw.taxes
        )
    else:
        taxes = tuple(
            LineTax(
                rate_id=_id(t.tax_rate) or "automatic",
                amount=t.amount,
                inclusive=t.inclusive,
                taxable_amount=t.taxable_amount,
            )
            for t in raw.tax_amounts or ()
        )
    product = None
    if raw.pricing and raw.pricing.price_details:
        product = _id(raw.pricing.price_details.product)
    elif raw.price:
        product = _id(raw.price.product)
    return LineItem(
        source_id=raw.id,
        description=(raw.description or "").strip() or f"Line of {invoice_id}",
        product_id=product,
        quantity=raw.quantity if raw.quantity is not None else 1,
        amount=raw.amount,
        discount=sum(d.amount for d in raw.discount_amounts or ()),
        taxes=taxes,
        invoice_line_id=raw.invoice_line_item,
    )


def _payments(raw: _StripeInvoice, currency: str) -> tuple[Payment, ...]:
    paid_at = (raw.status_transitions.paid_at if raw.status_transitions else None) or raw.created
    if raw.payments is not None and raw.payments.data:
        return tuple(
            Payment(
                source_id=p.id,
                invoice_source_id=raw.id,
                amount=p.amount_paid or 0,
                currency=currency,
                paid_on=_day((p.status_transitions.paid_at if p.status_transitions else None) or p.created),
                reference=p.id,
                charges=_ids(p.payment.payment_intent, p.payment.charge) if p.payment else (),
                payment_record=(
                    _id(p.payment.payment_record)
                    if p.payment and p.payment.type == "payment_record"
                    else None
                ),
            )
            for p in raw.payments.data
            if p.status == "paid" and (p.amount_paid or 0) > 0
        )
    if raw.amount_paid > 0:
        # Webhooks carry ``payments`` only when expanded, which they never are, and the earlier
        # shape names only the latest charge. What is certain is the running ``amount_paid``: it is
        # booked as a cumulative payment, whose id changes with the amount, so a second partial
        # payment is a new record and push books only the difference.
        charge = _id(raw.charge)
        return (
            Payment(
                source_id=f"{raw.id}:paid:{raw.amount_paid}",
                invoice_source_id=raw.id,
                amount=raw.amount_paid,
                currency=currency,
                paid_on=_day(paid_at),
                reference=charge,
                charges=_ids(raw.charge, raw.payment_intent),
                cumulative=True,
            ),
        )
    return ()


def parse_invoice(obj: dict[str, Any]) -> Invoice:
    """Stripe Invoice object (either shape) -> ``Invoice``. Raises ``InvalidPayload``."""
    try:
        raw = _StripeInvoice.model_validate(obj)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, ("data", "object"))) from None
    currency = raw.currency.upper()
    lines = tuple(_line(line, raw.id) for line in raw.lines.data)
    if raw.total_taxes is not None:
        tax = sum(t.amount for t in raw.total_taxes if t.tax_behavior != "inclusive")
    elif raw.tax is not None:
        tax = raw.tax
    else:
        tax = sum(t.amount for line in lines for t in line.taxes if not t.inclusive)
    transitions = raw.status_transitions
    issued = raw.effective_at or (transitions.finalized_at if transitions else None) or raw.created
    customer_id = _id(raw.customer)
    if not customer_id:
        raise InvalidPayload("data.object.customer: missing customer id")
    try:
        return Invoice(
            source_id=raw.id,
            number=raw.number,
            status=raw.status,
            currency=currency,
            customer=Customer(source_id=customer_id, name=raw.customer_name, email=raw.customer_email),
            issued_on=_day(issued),
            due_on=_day(raw.due_date) if raw.due_date else None,
            lines=lines,
            lines_complete=not raw.lines.has_more,
            subtotal=raw.subtotal,
            discount=sum(d.amount for d in raw.total_discount_amounts or ()),
            tax=tax,
            total=raw.total,
            amount_paid=raw.amount_paid,
            payments=_payments(raw, currency),
            memo=raw.description,
        )
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, ("data", "object"))) from None


def parse_credit_note(obj: dict[str, Any], customer_name: str | None = None) -> CreditNote:
    """Stripe CreditNote object (either shape) -> ``CreditNote``. Raises ``InvalidPayload``."""
    try:
        raw = _StripeCreditNote.model_validate(obj)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, ("data", "object"))) from None
    customer_id = _id(raw.customer)
    if not customer_id:
        raise InvalidPayload("data.object.customer: missing customer id")
    lines = tuple(_line(line, raw.id) for line in raw.lines.data)
    refunded = sum(r.amount_refunded for r in raw.refunds or ())
    if raw.refunds is None and _id(raw.refund):
        refunded = raw.total - (raw.out_of_band_amount or 0)  # the earlier shape names one refund
    try:
        return CreditNote(
            source_id=raw.id,
            number=raw.number,
            status=raw.status,
            invoice_source_id=_id(raw.invoice),
            currency=raw.currency.upper(),
            customer=Customer(source_id=customer_id, name=customer_name),
            issued_on=_day(raw.effective_at or raw.created),
            lines=lines,
            lines_complete=not raw.lines.has_more,
            subtotal=raw.subtotal,
            discount=sum(d.amount for d in raw.discount_amounts or ()),
            tax=sum(t.amount for line in lines for t in line.taxes if not t.inclusive),
            total=raw.total,
            refunded=refunded,
            for_invoice=(
                raw.pre_payment_amount
                if raw.pre_payment_amount is not None
                else raw.total
                if raw.type in {None, "pre_payment"}
                else 0
            ),
            memo=raw.memo,
        )
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, ("data", "object"))) from None


def parse_refund(obj: dict[str, Any], event_created: int) -> Refund:
    """Stripe Charge (from charge.refunded) -> ``Refund`` of its running refunded amount."""
    try:
        raw = _StripeCharge.model_validate(obj)
        return Refund(
            source_id=f"{raw.id}:refunded:{raw.amount_refunded}",
            charge_id=raw.id,
            currency=raw.currency.upper(),
            customer_id=_id(raw.customer),
            invoice_source_id=_id(raw.invoice),
            payment_intent=_id(raw.payment_intent),
            refunded_on=_day(event_created),
            refunded_at=event_created,
            total=raw.amount_refunded,
        )
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, ("data", "object"))) from None


def parse_payout(obj: dict[str, Any], event_created: int) -> Payout:
    """Stripe Payout (from a payout.* event) -> ``Payout``, stamped with the event's time. A payout
    that debits the bank (``amount`` <= 0) is accepted, so Stripe does not retry it for days: push
    parks it for a person (``sync.payouts``). Raises ``InvalidPayload`` for an unreadable one."""
    try:
        raw = _StripePayout.model_validate(obj)
        return Payout(
            source_id=raw.id,
            amount=raw.amount,
            currency=raw.currency.upper(),
            arrival_on=_day(raw.arrival_date),
            automatic=raw.automatic,
            status=raw.status,
            reconciliation_status=raw.reconciliation_status,
            balance_transaction=_id(raw.balance_transaction),
            destination=_id(raw.destination),
            created=event_created,
        )
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, ("data", "object"))) from None


# A \uD800-\uDFFF escape: the only way JSON in UTF-8 can carry a surrogate. One of a pair (an emoji)
# decodes to a real character; a lone one to a string no UTF-8 encoder takes, which would fail
# the queue message's serialisation after the webhook was accepted (a 5xx, retried for days).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _unicode(document: Any) -> bool:
    """True when every string in the decoded body encodes as UTF-8 (no lone surrogate)."""
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_event(payload: bytes) -> SourceEvent | None:
    """Parses a verified Stripe event. ``None`` for an event type invoice-sync does not handle."""
    try:
        document = json.loads(payload)
    except RecursionError:
        # Arrays or objects nested some thousand deep: the decoder's recursion gives out (no event
        # of Stripe's nests more than a dozen levels).
        raise InvalidPayload("body is not valid JSON: nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidPayload(
            f"body is not valid JSON: {exc.__class__.__name__} at position "
            f"{getattr(exc, 'pos', getattr(exc, 'start', 0))}"
        ) from None
    if _SURROGATE_ESCAPE.search(payload) and not _unicode(document):
        raise InvalidPayload("body is not valid JSON: a \\u escape names half a surrogate pair")
    if not isinstance(document, dict):
        raise InvalidPayload("body must be a JSON object (a Stripe event)")
    try:
        event = _StripeEvent.model_validate(document)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc)) from None
    if event.object != "event":
        raise InvalidPayload("object: expected 'event'")
    if event.type not in HANDLED_EVENTS:
        return None
    if event.type == "charge.refunded":
        return SourceEvent(
            event_id=event.id,
            event_type=event.type,
            created=event.created,
            refund=parse_refund(event.data.object, event.created),
        )
    if event.type.startswith("payout."):
        return SourceEvent(
            event_id=event.id,
            event_type=event.type,
            created=event.created,
            payout=parse_payout(event.data.object, event.created),
        )
    if event.type.startswith("credit_note."):
        return SourceEvent(
            event_id=event.id,
            event_type=event.type,
            created=event.created,
            credit_note=parse_credit_note(event.data.object),
        )
    return SourceEvent(
        event_id=event.id,
        event_type=event.type,
        created=event.created,
        invoice=parse_invoice(event.data.object),
    )
