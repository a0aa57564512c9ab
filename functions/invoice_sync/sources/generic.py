"""Generic source: any billing system that posts signed invoice and credit-note snapshots in
invoice-sync's own format.

The contract is published as ``schemas/generic-webhook.schema.json`` and explained to billing-system
developers in ``docs/generic-webhooks.md``. The input models here mirror that schema field for field
(strict types, unknown fields refused), and a unit test runs both over the same valid and invalid
bodies, so the two cannot drift apart. What JSON Schema cannot say (totals that add up, ids unique
within a document) is checked after it, in ``_check`` and ``_check_credit_note``.

Every event carries the full snapshot of its document (an invoice or a credit note), never a delta,
so a duplicate, a retry or an out-of-order delivery is harmless: push makes the ledger match the
newest snapshot it has seen.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

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
    SourceEvent,
)
from invoice_sync.sources import signing
from invoice_sync.sources.validation import describe

# Lower case: intake lower-cases header names. Senders write ``X-Invoice-Sync-Signature``.
SIGNATURE_HEADER = "x-invoice-sync-signature"

INVOICE_EVENTS = frozenset({"invoice.upserted", "invoice.voided", "payment.recorded"})
CREDIT_NOTE_EVENTS = frozenset({"credit_note.upserted", "credit_note.voided"})
HANDLED_EVENTS = INVOICE_EVENTS | CREDIT_NOTE_EVENTS

# The largest integer every JSON parser holds exactly (2**53 - 1, JavaScript's MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER = 9_007_199_254_740_991


# --- signature ------------------------------------------------------------------------------------
# Deliberately Stripe's recipe, so any existing Stripe-style signing helper works (sources.signing).

sign = signing.sign
signature_header = signing.signature_header


def verify_signature(
    payload: bytes, header: str | None, secrets: Sequence[str], *, now: float, tolerance: int
) -> None:
    signing.verify(payload, header, secrets, now=now, tolerance=tolerance, name="X-Invoice-Sync-Signature")


# --- input models (the published schema, as pydantic; kept apart from the domain) -----------------


def _integral(value: object) -> object:
    # JSON Schema counts 100.0 as the integer 100 (and Python's json.dumps writes floats that way),
    # so the parser does too; 100.5 still fails as "not a valid integer".
    if isinstance(value, float) and value.is_integer() and abs(value) <= MAX_SAFE_INTEGER:
        return int(value)
    return value


def _calendar_date(value: str) -> str:
    # The pattern has the shape; this refuses 2026-02-30. Python's own message quotes the input,
    # so it is replaced.
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("not a calendar date (YYYY-MM-DD)") from None
    return value


def _pattern(regex: str, low: int, high: int) -> Any:
    return Field(pattern=regex, min_length=low, max_length=high)


Int = Annotated[int, BeforeValidator(_integral)]
Money = Annotated[Int, Field(ge=0, le=MAX_SAFE_INTEGER)]
SignedMoney = Annotated[Int, Field(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)]
PositiveMoney = Annotated[Int, Field(ge=1, le=MAX_SAFE_INTEGER)]
# Ids land in DynamoDB keys, idempotency keys and ledger references: printable ASCII, no spaces.
ObjectId = Annotated[str, _pattern(r"^[\x21-\x7E]+$", 1, 255)]
# Several rates on one line are mapped under their ids joined by "+", so a rate id cannot hold one.
TaxRateId = Annotated[str, _pattern(r"^[\x21-\x2A\x2C-\x7E]+$", 1, 255)]
# Event ids also name the S3 archive object and its (ASCII-only) metadata.
EventId = Annotated[str, _pattern(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$", 1, 255)]
EventType = Annotated[str, _pattern(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$", 3, 100)]
CurrencyCode = Annotated[str, _pattern(r"^[A-Za-z]{3}$", 3, 3)]
IsoDate = Annotated[str, _pattern(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", 10, 10), AfterValidator(_calendar_date)]
Text = Annotated[str, Field(min_length=1, max_length=255)]
LongText = Annotated[str, Field(min_length=1, max_length=4000)]
Metadata = dict[str, Any]  # free-form, for the sender's own use; archived with the raw body, not synced
# Unix seconds. The upper bound (year 2286) refuses milliseconds sent by mistake.
UnixSeconds = Annotated[Int, Field(ge=0, le=9_999_999_999)]
Version = Annotated[Int, Field(ge=0, le=MAX_SAFE_INTEGER)]


class _In(BaseModel):
    # Strict: "100" is not 100 and true is not 1; an unknown field (a typo) is refused by name.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class _Customer(_In):
    id: ObjectId
    name: Text | None = None
    email: Text | None = None
    metadata: Metadata | None = None


class _Tax(_In):
    rate_id: TaxRateId
    amount: SignedMoney
    inclusive: bool = False
    taxable_amount: SignedMoney | None = None


class _Line(_In):
    id: ObjectId
    description: LongText
    product_id: ObjectId | None = None
    quantity: Annotated[Int, Field(ge=0, le=MAX_SAFE_INTEGER)]
    amount: SignedMoney
    discount: Money = 0
    taxes: list[_Tax] = Field(default_factory=list)
    metadata: Metadata | None = None


class _Payment(_In):
    id: ObjectId
    amount: PositiveMoney
    paid_on: IsoDate
    reference: Text | None = None
    metadata: Metadata | None = None


class _Invoice(_In):
    id: ObjectId
    number: Text | None = None
    status: Literal["draft", "open", "paid", "void", "uncollectible"]
    currency: CurrencyCode
    customer: _Customer
    issued_on: IsoDate
    due_on: IsoDate | None = None
    lines: list[_Line] = Field(min_length=1)
    subtotal: Money
    discount: Money | None = None
    tax: Money | None = None
    total: Money
    amount_paid: Money | None = None
    payments: list[_Payment] = Field(default_factory=list)
    memo: LongText | None = None
    metadata: Metadata | None = None


class _InvoiceData(_In):
    invoice: _Invoice


class _CreditNoteLine(_In):
    id: ObjectId
    description: LongText
    # At least one of the two (checked in _check_credit_note, and by the schema's anyOf).
    invoice_line_id: ObjectId | None = None
    product_id: ObjectId | None = None
    quantity: Annotated[Int, Field(ge=0, le=MAX_SAFE_INTEGER)]
    amount: SignedMoney
    discount: Money = 0
    taxes: list[_Tax] = Field(default_factory=list)
    metadata: Metadata | None = None


class _CreditNote(_In):
    id: ObjectId
    number: Text | None = None  # required when issued (checked in _check_credit_note)
    status: Literal["issued", "void"]
    invoice_id: ObjectId
    currency: CurrencyCode
    customer: _Customer
    issued_on: IsoDate
    lines: list[_CreditNoteLine] = Field(min_length=1)
    subtotal: Money
    discount: Money | None = None
    tax: Money | None = None
    total: Money
    for_invoice: Money | None = None
    refunded: Money | None = None
    memo: LongText | None = None
    metadata: Metadata | None = None


class _CreditNoteData(_In):
    credit_note: _CreditNote


_DataT = TypeVar("_DataT", _InvoiceData, _CreditNoteData)


class _Envelope(_In):
    id: EventId
    type: EventType
    created: UnixSeconds
    version: Version | None = None
    # Read as a plain object first: an event type invoice-sync does not handle is ignored whatever
    # it carries; a handled one is then validated as ``_InvoiceData`` or ``_CreditNoteData``.
    data: dict[str, Any]


# --- parsing --------------------------------------------------------------------------------------


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load(payload: bytes) -> dict[str, Any]:
    try:
        # NaN and Infinity are Python extensions, not JSON: refused like any other bad token.
        document = json.loads(payload, parse_constant=_refuse_constant)
    except RecursionError:
        # Arrays or objects nested some thousand deep: the decoder's recursion gives out.
        raise InvalidPayload("body is not valid JSON (UTF-8): nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        position = getattr(exc, "pos", getattr(exc, "start", None))
        where = f" at position {position}" if position is not None else ""
        raise InvalidPayload(f"body is not valid JSON (UTF-8){where}") from None
    if not isinstance(document, dict):
        raise InvalidPayload("body must be a JSON object (an invoice-sync event)")
    return document


def _check(event_type: str, raw: _Invoice) -> None:
    """What the schema cannot say: a snapshot must add up, and its ids must be unique in it."""
    where = "data.invoice"
    problems: list[str] = []
    if event_type == "invoice.voided" and raw.status != "void":
        problems.append(f"{where}.status: must be void in an invoice.voided event")
    if event_type == "payment.recorded" and not raw.payments:
        problems.append(f"{where}.payments: a payment.recorded event lists at least one payment")
    for name, ids in (("lines", [x.id for x in raw.lines]), ("payments", [x.id for x in raw.payments])):
        if len(set(ids)) != len(ids):
            problems.append(f"{where}.{name}: ids must be unique within the invoice")
    problems += _totals_problems(where, raw)
    if raw.amount_paid is not None and raw.amount_paid != sum(p.amount for p in raw.payments):
        problems.append(f"{where}.amount_paid: must equal the sum of the payments' amount")
    _raise(problems)


def _totals_problems(where: str, raw: _Invoice | _CreditNote) -> list[str]:
    """Lines, discount, tax and total must add up, as the sender's own figures say."""
    problems: list[str] = []
    if sum(line.amount for line in raw.lines) != raw.subtotal:
        problems.append(f"{where}.subtotal: must equal the sum of the lines' amount")
    discount = sum(line.discount for line in raw.lines)
    if raw.discount is not None and raw.discount != discount:
        problems.append(f"{where}.discount: must equal the sum of the lines' discount")
    tax = sum(t.amount for line in raw.lines for t in line.taxes if not t.inclusive)
    if raw.tax is not None and raw.tax != tax:
        problems.append(f"{where}.tax: must equal the sum of the lines' exclusive taxes")
    if raw.total != raw.subtotal - discount + tax:
        problems.append(f"{where}.total: must equal subtotal - discount + exclusive tax")
    return problems


def _raise(problems: list[str]) -> None:
    if problems:
        more = len(problems) - 5
        raise InvalidPayload("; ".join(problems[:5]) + (f"; and {more} more" if more > 0 else ""))


def _for_invoice(raw: _CreditNote) -> int:
    """What reduces what the invoice owes: as sent, else whatever of the total was not refunded."""
    return raw.for_invoice if raw.for_invoice is not None else raw.total - (raw.refunded or 0)


def _check_credit_note(event_type: str, raw: _CreditNote) -> None:
    """As ``_check``, for a credit note: it must add up, name what each line credits, and say no more
    went to the invoice and back to the customer than its total."""
    where = "data.credit_note"
    problems: list[str] = []
    if event_type == "credit_note.voided" and raw.status != "void":
        problems.append(f"{where}.status: must be void in a credit_note.voided event")
    if raw.status == "issued" and raw.number is None:
        problems.append(f"{where}.number: required when status is issued")
    ids = [x.id for x in raw.lines]
    if len(set(ids)) != len(ids):
        problems.append(f"{where}.lines: ids must be unique within the credit note")
    for i, line in enumerate(raw.lines):
        if line.invoice_line_id is None and line.product_id is None:
            problems.append(f"{where}.lines[{i}]: needs invoice_line_id or product_id")
    totals = _totals_problems(where, raw)
    problems += totals
    # The split of the total is checked only once the total itself stands.
    if not totals and (raw.refunded or 0) > raw.total:
        problems.append(f"{where}.refunded: must not exceed the total")
    elif not totals and _for_invoice(raw) + (raw.refunded or 0) > raw.total:
        problems.append(f"{where}.for_invoice: for_invoice + refunded must not exceed the total")
    _raise(problems)


def _line_item(line: _Line | _CreditNoteLine) -> LineItem:
    return LineItem(
        source_id=line.id,
        description=line.description,
        product_id=line.product_id,
        quantity=line.quantity,
        amount=line.amount,
        discount=line.discount,
        taxes=tuple(
            LineTax(
                rate_id=t.rate_id,
                amount=t.amount,
                inclusive=t.inclusive,
                taxable_amount=t.taxable_amount,
            )
            for t in line.taxes
        ),
        invoice_line_id=line.invoice_line_id if isinstance(line, _CreditNoteLine) else None,
    )


def parse_invoice(raw: _Invoice) -> Invoice:
    """A validated snapshot -> ``Invoice``. Discount, tax and amount paid default to what the lines
    and payments add up to (``_check`` has refused a snapshot where a value sent disagrees)."""
    currency = raw.currency.upper()
    return Invoice(
        source="generic",
        source_id=raw.id,
        number=raw.number,
        status=InvoiceStatus(raw.status),
        currency=currency,
        customer=Customer(source_id=raw.customer.id, name=raw.customer.name, email=raw.customer.email),
        issued_on=date.fromisoformat(raw.issued_on),
        due_on=date.fromisoformat(raw.due_on) if raw.due_on else None,
        lines=tuple(_line_item(line) for line in raw.lines),
        lines_complete=True,  # a generic snapshot is whole by contract: there is no paging
        subtotal=raw.subtotal,
        discount=sum(line.discount for line in raw.lines),
        tax=sum(t.amount for line in raw.lines for t in line.taxes if not t.inclusive),
        total=raw.total,
        amount_paid=sum(p.amount for p in raw.payments),
        payments=tuple(
            Payment(
                source_id=p.id,
                invoice_source_id=raw.id,
                amount=p.amount,
                currency=currency,
                paid_on=date.fromisoformat(p.paid_on),
                reference=p.reference,
            )
            for p in raw.payments
        ),
        memo=raw.memo,
    )


def parse_credit_note(raw: _CreditNote) -> CreditNote:
    """A validated credit note -> ``CreditNote``, as ``stripe.parse_credit_note`` builds one: lines
    name the invoice line they credit (push takes its product from there) or carry their own product;
    discount, tax and refunded default to what the lines add up to and to 0, and ``for_invoice`` to
    whatever of the total was not refunded."""
    return CreditNote(
        source="generic",
        source_id=raw.id,
        number=raw.number,
        status=CreditNoteStatus(raw.status),
        invoice_source_id=raw.invoice_id,
        currency=raw.currency.upper(),
        customer=Customer(source_id=raw.customer.id, name=raw.customer.name, email=raw.customer.email),
        issued_on=date.fromisoformat(raw.issued_on),
        lines=tuple(_line_item(line) for line in raw.lines),
        lines_complete=True,
        subtotal=raw.subtotal,
        discount=sum(line.discount for line in raw.lines),
        tax=sum(t.amount for line in raw.lines for t in line.taxes if not t.inclusive),
        total=raw.total,
        refunded=raw.refunded or 0,
        for_invoice=_for_invoice(raw),
        memo=raw.memo,
    )


@dataclass(frozen=True)
class ValidatedEvent:
    """A body that passed the schema and ``_check`` (or ``_check_credit_note``), still in the sender's
    terms. Exactly one of ``invoice`` and ``credit_note`` is set."""

    id: str
    type: str
    created: int
    version: int | None
    invoice: _Invoice | None = None
    credit_note: _CreditNote | None = None


def validate_event(payload: bytes) -> ValidatedEvent | None:
    """Validates a body against the contract without building domain objects: what the schema
    agreement test runs. ``None`` for a well-formed event of a type invoice-sync does not handle."""
    document = _load(payload)
    try:
        envelope = _Envelope.model_validate(document)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc)) from None
    if envelope.type not in HANDLED_EVENTS:
        return None
    head = (envelope.id, envelope.type, envelope.created, envelope.version)
    if envelope.type in CREDIT_NOTE_EVENTS:
        note = _data(_CreditNoteData, envelope.data).credit_note
        _check_credit_note(envelope.type, note)
        return ValidatedEvent(*head, credit_note=note)
    invoice = _data(_InvoiceData, envelope.data).invoice
    _check(envelope.type, invoice)
    return ValidatedEvent(*head, invoice=invoice)


def _data(model: type[_DataT], data: dict[str, Any]) -> _DataT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidPayload(describe(exc, ("data",))) from None


def parse_event(payload: bytes) -> SourceEvent | None:
    """Parses a verified event. ``None`` for a well-formed event of a type invoice-sync does not handle.

    Raises ``InvalidPayload`` (400) naming each offending field. A failure while building the domain
    objects from a body that passed validation is a bug of ours, so it is left to surface as a 5xx:
    the sender retries, and nothing valid is refused as the sender's fault.
    """
    event = validate_event(payload)
    if event is None:
        return None
    return SourceEvent(
        source="generic",
        event_id=event.id,
        event_type=event.type,
        created=event.created,
        invoice=parse_invoice(event.invoice) if event.invoice else None,
        credit_note=parse_credit_note(event.credit_note) if event.credit_note else None,
        # Orders snapshots when sent; otherwise SourceEvent falls back to created and status.
        explicit_version=event.version,
    )
