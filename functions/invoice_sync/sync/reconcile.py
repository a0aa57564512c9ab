"""Reconciliation: proof, per connection and window, that the source, invoice-sync's records and the
ledger agree, and precisely where they do not.

Three streams go in, each read page by page by its own reader: the source's documents (Stripe's
invoices, their payments, credit notes), the SyncState records of the window (the day index), and
the ledger's documents (``LedgerPort.list_documents``). They are joined on one key, (kind, source
id), by hash maps: the source's and the ledger's documents are held in slim form (a few fields,
``__slots__``), the records are folded in as they stream. Every key is then judged once, so the
work is linear in the documents, never a loop over one side per document of another.

The ledger's documents are keyed by the marker invoice-sync writes in their note
(``invoice-sync: stripe <id>``); one whose marker is gone (QBO replaces the note of a void) is
found through the record's ledger id instead.

Refunds are judged apart, in two checks (docs/reconcile.md): each refund record push booked
(``ch_...:refunded:N``, synced with a ledger id) against the ledger's refund documents with its
marker, and, per charge Stripe refunded in the window, Stripe's refunded total against the highest
running total the charge's refund records name.

A side that failed mid-read (a ledger or Stripe that kept failing or throttling) is named in
``incomplete``: what could not be proven absent is then not reported as absent, and the run is
marked incomplete rather than clean.

With payments back on (issue 7, design two-way 3.5.3), the other direction too, ledger -> Stripe:
each ledger payment listed without invoice-sync's marker must have a ``ledger_payment`` record
(``ledger_payment_not_sent`` otherwise), and each Stripe invoice payments back wrote to must hold,
paid outside Stripe, what its synced ``ledger_payment`` records sent (``off_stripe_mismatch``).
Both read beyond the three streams through a ``PaymentsBackSide``, only for the few documents
concerned (one query or GET each).

Payouts as bank deposits (issue 7, design two-way 3.5.3): each ``payout`` record of the window
push booked is checked against the ledger's deposit, read by its id (``DepositSide``, one GET
each): ``deposit_missing`` when the ledger no longer holds it (or it is void), and
``deposit_total_differs`` when its total is not the ``ledger_total`` push booked. A parked payout
record is ``deposit_missing`` too, as a parked invoice is ``missing_in_ledger``: the bank has the
line, the ledger no deposit. FreshBooks' payouts (``deposit_support == "fees_only"``: the fees as an
expense, the rest on a deposit slip a person matches, design 3.9) are counted as
``manual_deposit``, never a difference.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from invoice_sync.ledgers.port import MARKER_PREFIX, LedgerDocument, LedgerPayment, marked
from invoice_sync.models.money import Money, exponent
from invoice_sync.models.sync import SyncRecord, SyncStatus

SCHEMA = "invoice-sync.reconciliation/1"
# A total that differs by at most this many minor units, with no tax difference to explain it, is
# rounding (a ledger recomputing a line's tax), not a wrong amount.
ROUNDING_MINOR_UNITS = 2
# What push's refund documents carry after the charge id in their marker (``ch_...:refunded:N``).
REFUND_MARK = ":refunded:"
# What a refund document's payout (Xero: the refund Payment on its credit note) carries after it.
PAYOUT_MARK = ":payout"
# What the payout of a credit note's refunded part (Xero: a refund Payment on the ledger credit
# note) carries after the credit note's id.
CREDIT_PAYOUT_MARK = ":refund"
# Stripe refunds that give nothing back: a charge's ``amount_refunded`` leaves them out.
NOT_REFUNDED = frozenset({"failed", "canceled"})


class DifferenceClass(StrEnum):
    MISSING_IN_LEDGER = "missing_in_ledger"
    UNKNOWN_TO_SOURCE = "unknown_to_source"
    DUPLICATE_IN_LEDGER = "duplicate_in_ledger"
    AMOUNT_DIFFERS = "amount_differs"
    TAX_OR_ROUNDING_DIFFERS = "tax_or_rounding_differs"
    STATUS_DIFFERS = "status_differs"
    CURRENCY_DIFFERS = "currency_differs"
    PAYMENT_APPLIED_TWICE = "payment_applied_twice"
    PAYMENT_NOT_APPLIED = "payment_not_applied"
    MISSING_IN_RECORDS = "missing_in_records"
    # Payments back (ledger -> Stripe): a ledger payment no ``ledger_payment`` record names (the
    # ledger's webhook and the poll both missed it), and a Stripe invoice whose money paid outside
    # Stripe is not what its synced ``ledger_payment`` records sent.
    LEDGER_PAYMENT_NOT_SENT = "ledger_payment_not_sent"
    OFF_STRIPE_MISMATCH = "off_stripe_mismatch"
    # Payouts as bank deposits (Stripe -> ledger): the deposit push booked for a payout is gone
    # from the ledger, void, or was never booked (the record parked); or its total is not what
    # push booked (someone edited the deposit).
    DEPOSIT_MISSING = "deposit_missing"
    DEPOSIT_TOTAL_DIFFERS = "deposit_total_differs"


# The classes of the payments-back direction (ledger -> Stripe); every other class is push's
# direction (Stripe -> ledger).
TO_SOURCE = frozenset({DifferenceClass.LEDGER_PAYMENT_NOT_SENT, DifferenceClass.OFF_STRIPE_MISMATCH})


# What --repair re-queues: what push can put right by syncing the source's snapshot again.
REPAIRABLE = frozenset(
    {
        DifferenceClass.MISSING_IN_LEDGER,
        DifferenceClass.AMOUNT_DIFFERS,
        DifferenceClass.TAX_OR_ROUNDING_DIFFERS,
        DifferenceClass.STATUS_DIFFERS,
        DifferenceClass.PAYMENT_NOT_APPLIED,
    }
)
# What --repair sends to payments back instead: the ledger payment, as a ledger event to read again.
REPAIRABLE_TO_SOURCE = frozenset({DifferenceClass.LEDGER_PAYMENT_NOT_SENT})


@dataclass(frozen=True, slots=True)
class SourceDoc:
    """One source document in the few fields reconciliation compares, amounts in minor units."""

    kind: str  # invoice, credit_note, payment
    source_id: str
    number: str | None
    currency: str
    total: int
    tax: int
    status: str  # invoice: open/paid/void/uncollectible; credit note: issued/void; payment: paid
    created: int  # Unix seconds
    invoice_id: str | None = None  # a payment's invoice
    # A payment's Stripe payment record (``pr_…``), when it is one: payments back reports the
    # ledger's own payments as such (design two-way 3.5.1), and those are not push's to book.
    payment_record: str | None = None
    # A payment Stripe gave as the invoice's paid total so far (``in_…:paid:N``, no payments list).
    cumulative: bool = False


@dataclass(frozen=True, slots=True)
class SourceRefund:
    """One Stripe refund (``GET /v1/refunds``), amounts in minor units."""

    refund_id: str
    charge_id: str
    currency: str
    amount: int
    status: str  # succeeded, pending, requires_action, failed, canceled
    created: int  # Unix seconds


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    kind: str
    ledger_id: str
    source_id: str | None  # from the marker; None without one
    number: str | None
    currency: str
    total: int
    tax: int | None
    balance: int
    voided: bool
    # Its note starts with invoice-sync's prefix even when no marker parses from it (a credit
    # application, "invoice-sync: applies credit memo 7"): a ledger payment invoice-sync booked.
    ours: bool = False
    updated_at: datetime | None = None  # when the ledger last changed it


@dataclass(frozen=True, slots=True)
class RecordEntry:
    kind: str
    source_id: str
    status: str
    ledger_id: str | None
    created: datetime | None
    currency: str | None = None
    total: int | None = None  # a refund record: the charge's amount_refunded it was made for
    booked: int | None = None  # a refund record: the cash its ledger document books


def refund_charge(source_id: str) -> tuple[str, int | None]:
    """The charge and running refunded total a refund record's id (``ch_...:refunded:N``) names."""
    charge, _, total = source_id.partition(REFUND_MARK)
    return charge, int(total) if total.isdigit() else None


def minor(amount: Decimal, currency: str) -> int:
    """A ledger decimal in minor units (rounded half-even past the currency's decimals: a ledger
    keeping more decimals than the currency has is itself a difference the totals show)."""
    return int(amount.scaleb(exponent(currency)).to_integral_value())


def format_amount(amount: int, currency: str) -> str:
    """Minor units as the currency writes them: ``12.30`` USD, ``1230`` JPY, ``1.230`` KWD."""
    return str(Money(minor=amount, currency=currency).to_decimal())


def ledger_entry(kind: str, document: LedgerDocument) -> LedgerEntry:
    currency = (document.currency or "USD").upper()
    mark = marked(document.private_note)
    return LedgerEntry(
        kind=kind,
        ledger_id=document.id,
        source_id=mark[1] if mark else None,
        number=document.number,
        currency=currency,
        total=minor(document.total, currency),
        tax=minor(document.tax, currency) if document.tax is not None else None,
        balance=minor(document.balance, currency),
        voided=document.voided,
        ours=(document.private_note or "").strip().startswith(MARKER_PREFIX),
        updated_at=document.updated_at,
    )


def is_refund(entry: LedgerEntry) -> bool:
    """A refund document: QBO's RefundReceipt, or the credit note Xero and FreshBooks book a refund
    as, known by push's refund marker (``ch_...:refunded:N``)."""
    return entry.kind == "refund" or (entry.source_id is not None and REFUND_MARK in entry.source_id)


def record_entry(record: SyncRecord) -> RecordEntry:
    return RecordEntry(
        kind=record.kind,
        source_id=record.source_id,
        status=record.status.value,
        ledger_id=record.ledger_id,
        created=record.created_at,
        currency=record.currency,
        total=record.source_total,
        booked=record.ledger_total,
    )


@dataclass(frozen=True)
class Difference:
    cls: DifferenceClass
    kind: str
    source_id: str
    currency: str | None
    detail: str
    number: str | None = None
    source_amount: int | None = None
    ledger_amount: int | None = None
    ledger_ids: tuple[str, ...] = ()

    @property
    def difference(self) -> int | None:
        if self.source_amount is None or self.ledger_amount is None:
            return None
        return self.ledger_amount - self.source_amount

    @property
    def direction(self) -> str:
        """``to_source`` for a payments-back difference (ledger -> Stripe), else ``to_ledger``."""
        return "to_source" if self.cls in TO_SOURCE else "to_ledger"

    def as_json(self, links: Links) -> dict[str, Any]:
        def money(value: int | None) -> str | None:
            return format_amount(value, self.currency) if value is not None and self.currency else None

        return {
            "class": self.cls.value,
            "direction": self.direction,
            "kind": self.kind,
            "source_id": self.source_id,
            "number": self.number,
            "currency": self.currency,
            "source_amount": money(self.source_amount),
            "ledger_amount": money(self.ledger_amount),
            "difference": money(self.difference),
            "ledger_ids": list(self.ledger_ids),
            "detail": self.detail,
            "source_url": links.source(self.kind, self.source_id),
            "ledger_urls": [links.ledger(self.kind, i) for i in self.ledger_ids],
        }


@dataclass(frozen=True)
class Links:
    """Where a bookkeeper opens each document: Stripe's dashboard and the ledger's web app."""

    ledger_kind: str
    tenant_id: str
    livemode: bool = False

    def source(self, kind: str, source_id: str) -> str:
        base = "https://dashboard.stripe.com" + ("" if self.livemode else "/test")
        if kind == "ledger_payment" and source_id.startswith("in_"):
            kind = "invoice"  # off_stripe_mismatch names the Stripe invoice
        path = {
            "invoice": "invoices",
            "credit_note": "credit_notes",
            "payment": "payments",
            "payout": "payouts",
        }.get(kind, "search?query=")
        object_id = source_id.split(":", 1)[0]
        return f"{base}/{path}/{object_id}" if not path.endswith("=") else f"{base}/{path}{object_id}"

    def ledger(self, kind: str, ledger_id: str) -> str:
        if self.ledger_kind == "quickbooks":
            page = {
                "invoice": "invoice",
                "credit_note": "creditmemo",
                "refund": "refundreceipt",
                "payout": "deposit",
            }.get(kind, "recvpayment")
            return f"https://app.qbo.intuit.com/app/{page}?txnId={ledger_id}"
        if self.ledger_kind == "xero":
            if kind == "payout":  # the payout's bank transfer (its id is in ledger_ids too)
                return f"https://go.xero.com/Bank/ViewTransfer.aspx?bankTransferID={ledger_id}"
            if kind == "invoice":
                return f"https://go.xero.com/AccountsReceivable/View.aspx?InvoiceID={ledger_id}"
            if kind in ("credit_note", "refund"):  # Xero books a refund as a credit note
                return f"https://go.xero.com/AccountsReceivable/ViewCreditNote.aspx?creditNoteID={ledger_id}"
            return f"https://go.xero.com/Bank/ViewTransaction.aspx?paymentID={ledger_id}"
        page = {
            "invoice": "invoice",
            "credit_note": "credit-notes",
            "refund": "credit-notes",
            "payout": "expenses",  # the payout's fee expense
        }.get(kind, "payments")
        return f"https://my.freshbooks.com/#/{page}/{self.tenant_id}-{ledger_id}"


@dataclass
class SideTally:
    counts: Counter[str] = field(default_factory=Counter)  # by kind
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # invoices, by currency

    def add(self, kind: str, currency: str | None, total: int | None) -> None:
        self.counts[kind] += 1
        if kind == "invoice" and currency and total is not None:
            self.totals[currency] += total

    def as_json(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.counts.items())),
            "invoice_totals": {c: format_amount(v, c) for c, v in sorted(self.totals.items())},
        }


@dataclass(frozen=True, slots=True)
class OffStripe:
    """What Stripe says an invoice was paid outside Stripe (``amount_paid_off_stripe``, minor units;
    None when Stripe's answer carries no such field)."""

    invoice_id: str
    number: str | None
    currency: str
    amount: int | None


class PaymentsBackSide(Protocol):
    """What the payments-back checks read beyond the three streams, for the few documents they
    concern: SyncState by key, one ledger payment, one Stripe invoice."""

    @property
    def since(self) -> datetime | None:
        """The connection's ``payments_back_since``: older ledger payments are never sent."""
        ...

    @property
    def settled_before(self) -> datetime | None:
        """A ledger payment changed at or after this may still be on its way to payments back (the
        ledger's webhook, the queue, the Xero poll every 15 minutes): not judged yet."""
        ...

    def records_of_payment(self, ledger_payment_id: str) -> list[SyncRecord]:
        """Every ``ledger_payment`` record of one ledger payment (one per invoice it pays)."""
        ...

    def pushed(self, ledger_payment_id: str) -> bool:
        """Push booked this ledger payment (its ``ledger-payment:`` link, design 3.6 rule 2)."""
        ...

    def payment(self, ledger_payment_id: str) -> LedgerPayment | None:
        """The ledger payment read again; None when the ledger no longer has it."""
        ...

    def invoice_records(self, invoice_id: str) -> list[SyncRecord]:
        """Every ``ledger_payment`` record whose Stripe invoice is ``invoice_id``."""
        ...

    def from_ledger(self, payment_record_id: str) -> bool:
        """Payments back made this Stripe payment record (its ``pr_…`` link, design 3.6 loop 2)."""
        ...

    def off_stripe(self, invoice_id: str) -> OffStripe | None:
        """Stripe's invoice (``expand[]=amount_paid_off_stripe``); None when Stripe has none."""
        ...


class DepositSide(Protocol):
    """What the payout check reads beyond the three streams: the ledger's deposit of one payout,
    by the id push recorded (one GET each)."""

    @property
    def support(self) -> str:
        """The ledger's ``deposit_support``: ``deposit`` (QBO), ``transfer`` (Xero) or
        ``fees_only`` (FreshBooks: the fees as an expense, the rest on a deposit slip)."""
        ...

    def deposit(self, ledger_id: str) -> LedgerEntry | None:
        """The deposit (Xero: transfer; FreshBooks: fee expense) as the ledger holds it now; None
        when the ledger no longer has it."""
        ...


@dataclass
class Comparison:
    differences: list[Difference] = field(default_factory=list)
    sides: dict[str, SideTally] = field(
        default_factory=lambda: {"source": SideTally(), "records": SideTally(), "ledger": SideTally()}
    )
    incomplete: dict[str, str] = field(default_factory=dict)  # side -> what failed
    unmarked: int = 0  # ledger documents invoice-sync did not write (no marker): not compared
    synced: int = 0  # records synced in the window (the absence check's figure)
    # The records read, by direction and status: push's (Stripe -> ledger) and payments back's.
    to_ledger: Counter[str] = field(default_factory=Counter)
    to_source: Counter[str] = field(default_factory=Counter)
    payments_back: bool = False  # the payments-back checks ran (the connection has it on)
    ledger_payments_checked: int = 0  # unmarked ledger payments matched against the records
    invoices_checked: int = 0  # Stripe invoices whose money paid outside Stripe was compared
    deposits_checked: int = 0  # payouts' ledger deposits read and compared
    manual_deposit: int = 0  # FreshBooks payouts: a deposit slip for a person, never a difference

    @property
    def status(self) -> str:
        if self.incomplete:
            return "incomplete"
        return "differences" if self.differences else "clean"

    def counts(self) -> dict[str, int]:
        found = Counter(d.cls.value for d in self.differences)
        return {cls.value: found.get(cls.value, 0) for cls in DifferenceClass}

    def directions(self) -> dict[str, dict[str, Any]]:
        """Both directions side by side: the records read by status and the differences found."""
        found = Counter(d.direction for d in self.differences)
        return {
            "to_ledger": {
                "records": dict(sorted(self.to_ledger.items())),
                "differences": found.get("to_ledger", 0),
                "deposits_checked": self.deposits_checked,
                "manual_deposit": self.manual_deposit,
            },
            "to_source": {
                "payments_back": self.payments_back,
                "records": dict(sorted(self.to_source.items())),
                "differences": found.get("to_source", 0),
                "ledger_payments_checked": self.ledger_payments_checked,
                "invoices_checked": self.invoices_checked,
            },
        }


SourceLookup = Callable[[str, str], "SourceDoc | None"]
# All of a charge's refunds at Stripe, whenever made (an empty list: Stripe knows none).
ChargeRefunds = Callable[[str], "list[SourceRefund]"]


class Reconciler:
    """The keyed three-way join. Feed each side (``add_*``), then ``compare``."""

    def __init__(
        self,
        window_start: datetime,
        lookup: SourceLookup | None = None,
        charge_refunds: ChargeRefunds | None = None,
        payments_back: PaymentsBackSide | None = None,
        deposits: DepositSide | None = None,
    ) -> None:
        self.window_start = window_start
        # Payouts: their ledger deposits, read by id (None: not checked), and the window's payout
        # records by payout id.
        self._deposits = deposits
        self._payouts: dict[str, SyncRecord] = {}
        self._lookup = lookup
        # Payments back: its side (None: the connection has it off), the window's ledger_payment
        # records by source id, the ledger payments they name, the Stripe invoices to check, and
        # the ledger's payments with no marker.
        self._back = payments_back
        self._back_records: dict[str, SyncRecord] = {}
        self._back_payments: set[str] = set()
        self._back_invoices: set[str] = set()
        self._unmarked_payments: dict[str, LedgerEntry] = {}
        self._checked_payments: set[str] = set()
        self._sent: dict[str, int | None] = {}  # Stripe invoice -> what its synced records sent
        self._charge_refunds = charge_refunds
        self._charges_read: dict[str, list[SourceRefund] | None] = {}
        # Refunds: Stripe's charges refunded in the window, invoice-sync's refund records (by id,
        # and per charge the highest running total recorded), the ledger's refund documents.
        self._window_charges: dict[str, str] = {}  # charge -> currency
        self._refund_records: dict[str, RecordEntry] = {}
        self._recorded: dict[str, int] = {}
        self._refund_ledger: dict[str, list[LedgerEntry]] = defaultdict(list)
        self._unmarked_refunds: dict[str, LedgerEntry] = {}
        self._sources: dict[tuple[str, str], SourceDoc] = {}
        self._ledger: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
        # By (kind, ledger id): FreshBooks numbers invoices and payments apart, so one id may be both.
        self._unmarked: dict[tuple[str, str], LedgerEntry] = {}
        self._records: dict[tuple[str, str], RecordEntry] = {}
        self.result = Comparison(payments_back=payments_back is not None)

    # --- feeding the sides, each a stream ------------------------------------------------------

    def add_sources(self, documents: Iterable[SourceDoc]) -> None:
        self._read("source", documents, self._add_source)

    def add_refunds(self, refunds: Iterable[SourceRefund]) -> None:
        """Stripe's refunds created in the window (their charges are compared, see ``compare``)."""
        self._read("source", refunds, self._add_refund)

    def add_records(self, records: Iterable[SyncRecord]) -> None:
        self._read("records", records, self._add_record)

    def add_ledger(self, documents: Iterable[LedgerEntry]) -> None:
        self._read("ledger", documents, self._add_ledger)

    def mark_incomplete(self, side: str, error: str) -> None:
        self.result.incomplete.setdefault(side, error)

    def _read(self, side: str, items: Iterable[Any], add: Callable[[Any], None]) -> None:
        try:
            for item in items:
                add(item)
        except Exception as exc:  # noqa: BLE001 - any failure of a side makes the run incomplete
            self.mark_incomplete(side, f"{exc.__class__.__name__}: {exc}")

    def _add_source(self, document: SourceDoc) -> None:
        self._sources[(document.kind, document.source_id)] = document
        self.result.sides["source"].add(document.kind, document.currency, document.total)

    def _add_refund(self, refund: SourceRefund) -> None:
        self._window_charges.setdefault(refund.charge_id, refund.currency)
        self.result.sides["source"].add("refund", refund.currency, refund.amount)

    def _add_record(self, record: SyncRecord) -> None:
        if record.kind == "ledger_payment":
            self._add_back_record(record)
            return
        if record.direction == "to_ledger":
            self.result.to_ledger[record.status.value] += 1
        if record.kind == "payout":
            self._payouts[record.source_id] = record
            self.result.sides["records"].add("payout", record.currency, record.source_total)
            return
        if record.kind == "invoice" and record.ledger_paid:
            self._back_invoices.add(record.source_id)  # payments back wrote to it at some point
        if record.kind == "refund":
            entry = record_entry(record)
            self._refund_records[record.source_id] = entry
            charge, running = refund_charge(record.source_id)
            total = record.source_total if record.source_total is not None else running
            self._recorded[charge] = max(self._recorded.get(charge, 0), total or 0)
            self.result.sides["records"].add("refund", record.currency, total)
            return
        if record.kind not in {"invoice", "credit_note", "payment"}:
            return
        self._records[(record.kind, record.source_id)] = record_entry(record)
        self.result.sides["records"].add(record.kind, record.currency, record.source_total)
        if record.status is SyncStatus.SYNCED:
            self.result.synced += 1

    def _add_back_record(self, record: SyncRecord) -> None:
        """A payments-back record (ledger -> Stripe): counted on the records' side and its
        direction's; it names the ledger payment it was made for and the Stripe invoice to check."""
        self.result.sides["records"].add("ledger_payment", record.currency, record.ledger_total)
        self.result.to_source[record.status.value] += 1
        self._back_records[record.source_id] = record
        self._back_payments.add(record.ledger_id or record.source_id.partition(":")[0])
        if record.source_target:
            self._back_invoices.add(record.source_target)

    def _add_ledger(self, entry: LedgerEntry) -> None:
        if entry.kind == "payment" and entry.source_id is None:
            self._unmarked_payments[entry.ledger_id] = entry
        if is_refund(entry):
            # Refund documents (marker ``ch_...:refunded:N``) are judged against their refund
            # records; a refund's payout (``...:payout``, Xero's refund Payment) is not a document
            # of its own but how the credit note's money leaves.
            if entry.source_id is not None and entry.source_id.endswith(PAYOUT_MARK):
                self.result.sides["ledger"].add("refund_payout", entry.currency, entry.total)
                return
            self.result.sides["ledger"].add("refund", entry.currency, entry.total)
            if entry.source_id is None:
                self._unmarked_refunds[entry.ledger_id] = entry
            else:
                self._refund_ledger[entry.source_id].append(entry)
            return
        if entry.kind == "payment" and (entry.source_id or "").endswith(CREDIT_PAYOUT_MARK):
            # A credit note's refunded part paid out (``cn_...:refund``): how its money leaves,
            # not a payment of an invoice; counted, not judged (docs/reconcile.md).
            self.result.sides["ledger"].add("refund_payout", entry.currency, entry.total)
            return
        self.result.sides["ledger"].add(entry.kind, entry.currency, entry.total)
        if entry.source_id is None:
            self._unmarked[(entry.kind, entry.ledger_id)] = entry
            return
        self._ledger[(entry.kind, entry.source_id)].append(entry)

    # --- judging --------------------------------------------------------------------------------

    def compare(self) -> Comparison:
        keys = set(self._sources) | set(self._records) | set(self._ledger)
        for key in sorted(keys):
            self._judge(key)
        for refund_id in sorted(set(self._refund_records) | set(self._refund_ledger)):
            self._judge_refund(refund_id)
        self._judge_charges()
        self._judge_payouts()
        claimed = {(r.kind, r.ledger_id) for r in self._records.values() if r.ledger_id}
        if self._back is not None:
            # Push's payments only: FreshBooks numbers invoices and payments apart, so an invoice's
            # ledger id may be a payment's too.
            pushed = {r.ledger_id for r in self._records.values() if r.kind == "payment" and r.ledger_id}
            self._judge_ledger_payments(self._back, pushed)
            self._judge_off_stripe(self._back)
            claimed |= {("payment", i) for i in self._checked_payments}  # compared: not "not compared"
        claimed_refunds = {r.ledger_id for r in self._refund_records.values() if r.ledger_id}
        self.result.unmarked = sum(1 for key in self._unmarked if key not in claimed) + sum(
            1 for ledger_id in self._unmarked_refunds if ledger_id not in claimed_refunds
        )
        return self.result

    # --- payments back: the ledger's own payments, and what Stripe holds of them ------------------

    def _judge_ledger_payments(self, back: PaymentsBackSide, claimed: set[str]) -> None:
        """Each ledger payment listed without invoice-sync's marker, live, not push's and not older
        than payments back, is one a person recorded: payments back must have a record of it
        (synced, skipped or parked). Without one, unless reading it again shows payments back had
        nothing to do (it pays no invoice, it is gone or void, it is ours), it is
        ``ledger_payment_not_sent``. Each listed payment is judged on its own, so a ledger listing
        cut short claims nothing about the payments it did not list."""
        for ledger_id, entry in sorted(self._unmarked_payments.items()):
            if entry.voided or entry.ours or ledger_id in claimed:
                continue
            if back.since is not None and entry.updated_at is not None and entry.updated_at < back.since:
                continue
            fresh = back.settled_before
            if fresh is not None and entry.updated_at is not None and entry.updated_at >= fresh:
                continue  # the next day's run lists it again (changed in its window)
            try:
                if ledger_id not in self._back_payments and back.pushed(ledger_id):
                    continue  # push booked it (its note edited since): push's direction, not this one
                self._checked_payments.add(ledger_id)
                self.result.ledger_payments_checked += 1
                if ledger_id in self._back_payments or back.records_of_payment(ledger_id):
                    continue
            except Exception as exc:  # noqa: BLE001 - records that cannot be read prove nothing
                self.mark_incomplete("records", f"{exc.__class__.__name__}: {exc}")
                return
            try:
                payment = back.payment(ledger_id)
            except Exception as exc:  # noqa: BLE001 - a ledger that cannot be read proves nothing
                self.mark_incomplete("ledger", f"{exc.__class__.__name__}: {exc}")
                return
            if not_to_send(payment, back.since) is not None:
                continue
            assert payment is not None  # not_to_send says why a missing one is not sent
            invoices = ", ".join(dict.fromkeys(a.invoice_id for a in payment.applications if a.amount > 0))
            self._add(
                DifferenceClass.LEDGER_PAYMENT_NOT_SENT,
                "ledger_payment",
                ledger_id,
                entry.currency,
                f"recorded in the ledger on {payment.paid_on.isoformat()} against ledger invoice(s) "
                f"{invoices}, and never sent to Stripe: payments back has no record of it (neither the "
                "ledger's webhook nor the poll brought it)",
                ledger=[entry],
            )

    def _judge_off_stripe(self, back: PaymentsBackSide) -> None:
        """Per Stripe invoice payments back wrote to (a ``ledger_payment`` record of the window
        names it, or its invoice record of the window holds ledger payments): Stripe's money paid
        outside Stripe (``amount_paid_off_stripe``) against the sum its ``synced``
        ``ledger_payment`` records sent, all of them (those of earlier days too). A difference is
        ``off_stripe_mismatch``: ``source_amount`` Stripe's, ``ledger_amount`` **the records'**."""
        if "source" in self.result.incomplete:
            return
        for invoice_id in sorted(self._back_invoices):
            records = self._invoice_back_records(invoice_id)
            if records is None:
                return
            if not records:
                continue
            try:
                stripe = back.off_stripe(invoice_id)
            except Exception as exc:  # noqa: BLE001 - a Stripe that cannot be read proves nothing
                self.mark_incomplete("source", f"{exc.__class__.__name__}: {exc}")
                return
            if stripe is not None and stripe.amount is None:
                self.mark_incomplete(
                    "source", f"Stripe's invoice {invoice_id} carries no amount_paid_off_stripe"
                )
                return
            self.result.invoices_checked += 1
            synced = [r for r in records if r.status is SyncStatus.SYNCED]
            sent = sum(r.ledger_total or 0 for r in synced)
            held = stripe.amount if stripe is not None and stripe.amount is not None else 0
            if held == sent:
                continue
            currency = (stripe.currency if stripe is not None else records[0].currency or "USD").upper()
            others = [r for r in records if r.status is not SyncStatus.SYNCED]
            where = (
                f"Stripe holds {format_amount(held, currency)} paid outside Stripe"
                if stripe is not None
                else "Stripe does not know the invoice"
            )
            detail = f"{where}; the synced ledger payments sent {format_amount(sent, currency)}"
            if others:
                detail += "; not synced: " + ", ".join(
                    f"ledger payment {r.ledger_id or r.source_id} {r.status.value}"
                    + (f" ({r.alerted_reason or r.last_error})" if r.alerted_reason or r.last_error else "")
                    for r in others
                )
            self.result.differences.append(
                Difference(
                    cls=DifferenceClass.OFF_STRIPE_MISMATCH,
                    kind="ledger_payment",
                    source_id=invoice_id,
                    currency=currency,
                    detail=detail,
                    number=(stripe.number if stripe is not None else None) or records[0].source_number,
                    source_amount=held,
                    ledger_amount=sent,
                    ledger_ids=tuple(dict.fromkeys(r.ledger_id for r in synced if r.ledger_id)),
                )
            )

    # --- payouts: one ledger deposit each --------------------------------------------------------

    def _judge_payouts(self) -> None:
        """Each payout record of the window against the ledger. Skipped ones book nothing (not paid
        yet, failed, manual, payout deposits off). A parked or pending one has no deposit while the
        bank has the line: ``deposit_missing``, with the record's reason. A synced one's deposit is
        read by its ledger id: gone or void is ``deposit_missing``, another total than the
        ``ledger_total`` push booked ``deposit_total_differs`` (``source_amount`` the booked total,
        ``ledger_amount`` the deposit's). A FreshBooks payout (``fees_only``) is ``manual_deposit``.
        A read that fails otherwise makes the ledger side incomplete and claims nothing more."""
        if not self._payouts or self._deposits is None:
            return
        support: str | None = None
        for record in sorted(self._payouts.values(), key=lambda r: r.source_id):
            if record.status is SyncStatus.SKIPPED:
                continue
            currency = (record.currency or "USD").upper()
            booked = record.ledger_total if record.ledger_total is not None else record.source_total
            if record.status is not SyncStatus.SYNCED:
                why = record.alerted_reason or record.last_error
                self._payout_difference(
                    DifferenceClass.DEPOSIT_MISSING,
                    record,
                    f"record {record.status.value}"
                    + (f" ({why})" if why else "")
                    + ": Stripe paid the payout into the bank, the ledger has no deposit for it",
                )
                continue
            try:
                support = support or self._deposits.support
            except Exception as exc:  # noqa: BLE001 - a ledger that cannot be set up proves nothing
                self.mark_incomplete("ledger", f"{exc.__class__.__name__}: {exc}")
                return
            if support == "fees_only":
                self.result.manual_deposit += 1  # design two-way 3.9 step 3
                continue
            if not record.ledger_id:
                self._payout_difference(
                    DifferenceClass.DEPOSIT_MISSING, record, "record synced without a deposit id"
                )
                continue
            try:
                entry = self._deposits.deposit(record.ledger_id)
            except Exception as exc:  # noqa: BLE001 - a ledger that cannot be read proves nothing
                self.mark_incomplete("ledger", f"{exc.__class__.__name__}: {exc}")
                return
            self.result.deposits_checked += 1
            if entry is None:
                self._payout_difference(
                    DifferenceClass.DEPOSIT_MISSING,
                    record,
                    f"record synced as deposit {record.ledger_id}, which the ledger does not hold",
                )
                continue
            self.result.sides["ledger"].add("payout", entry.currency, entry.total)
            if entry.voided:
                self._payout_difference(
                    DifferenceClass.DEPOSIT_MISSING,
                    record,
                    f"deposit {entry.ledger_id} is void in the ledger",
                    entry,
                )
            elif entry.currency != currency:
                self._payout_difference(
                    DifferenceClass.DEPOSIT_TOTAL_DIFFERS,
                    record,
                    f"{currency} booked, {entry.currency} in the ledger",
                    entry,
                )
            elif entry.total != booked:
                self._payout_difference(
                    DifferenceClass.DEPOSIT_TOTAL_DIFFERS,
                    record,
                    "the deposit's total is not what push booked for the payout (the bank line: "
                    f"{format_amount(record.source_total or 0, currency)})",
                    entry,
                )

    def _payout_difference(
        self, cls: DifferenceClass, record: SyncRecord, detail: str, ledger: LedgerEntry | None = None
    ) -> None:
        """A payout's difference: with the ledger's deposit, ``source_amount`` is what push booked
        (``ledger_total``) and ``ledger_amount`` the deposit's; without one, the payout's amount."""
        booked = record.ledger_total if record.ledger_total is not None else record.source_total
        self.result.differences.append(
            Difference(
                cls=cls,
                kind="payout",
                source_id=record.source_id,
                currency=(record.currency or "USD").upper(),
                detail=detail,
                number=record.source_number,
                source_amount=booked if ledger is not None else record.source_total,
                ledger_amount=ledger.total if ledger is not None else None,
                ledger_ids=(ledger.ledger_id,) if ledger is not None else (),
            )
        )

    # --- refunds --------------------------------------------------------------------------------

    def _stripe_refunds(self, charge: str) -> list[SourceRefund] | None:
        """All of a charge's refunds at Stripe, read once; None when they cannot be read (the
        source side is then incomplete)."""
        if self._charge_refunds is None or "source" in self.result.incomplete:
            return None
        if charge not in self._charges_read:
            try:
                self._charges_read[charge] = list(self._charge_refunds(charge))
            except Exception as exc:  # noqa: BLE001 - a side that cannot be read is incomplete
                self.mark_incomplete("source", f"{exc.__class__.__name__}: {exc}")
                self._charges_read[charge] = None
        return self._charges_read[charge]

    def _judge_refund(self, refund_id: str) -> None:
        """invoice-sync's refund record against the ledger: a record push booked (synced, with a
        ledger id) has exactly one live refund document with its marker, of the booked amount. A
        record parked or skipped books nothing (a payout the ledger cannot make, cash a credit note
        gives back) and is not expected in the ledger."""
        record = self._refund_records.get(refund_id)
        ledger = list(self._refund_ledger.get(refund_id, ()))
        if record is not None and record.ledger_id in self._unmarked_refunds:
            ledger.append(self._unmarked_refunds[record.ledger_id])  # its marker is gone (a QBO void)
        charge, _ = refund_charge(refund_id)
        if record is None:
            self._judge_unrecorded_refund(refund_id, charge, ledger)
            return
        if record.status != SyncStatus.SYNCED.value or not record.ledger_id:
            return
        currency = (record.currency or (ledger[0].currency if ledger else "USD")).upper()
        booked = SourceDoc(
            "refund",
            refund_id,
            charge,
            currency,
            record.booked if record.booked is not None else 0,
            0,
            "synced",
            int(record.created.timestamp()) if record.created else 0,
        )

        def add(cls: DifferenceClass, detail: str, found: list[LedgerEntry], *, amounts: bool = True) -> None:
            self._add(
                cls, "refund", refund_id, currency, detail, source=booked, ledger=found, amounts=amounts
            )

        if not ledger:
            older = record.created is not None and record.created < self.window_start
            if "ledger" in self.result.incomplete or older:
                return  # a refund document from before the window need not have changed in it
            add(
                DifferenceClass.MISSING_IN_LEDGER,
                f"record synced as refund document {record.ledger_id}, which the ledger does not hold",
                [],
                amounts=record.booked is not None,
            )
            return
        live = [e for e in ledger if not e.voided]
        if not live:
            add(DifferenceClass.STATUS_DIFFERS, "void in the ledger only", ledger, amounts=False)
            return
        if len(live) > 1:
            add(
                DifferenceClass.DUPLICATE_IN_LEDGER,
                f"{len(live)} live refund documents for one refund: void all but one",
                live,
            )
            return
        (entry,) = live
        if entry.currency != currency:
            add(DifferenceClass.CURRENCY_DIFFERS, f"{currency} booked, {entry.currency} in the ledger", live)
        elif record.booked is not None and entry.total != record.booked:
            add(DifferenceClass.AMOUNT_DIFFERS, "the refund document's total is not the cash booked", live)

    def _judge_unrecorded_refund(self, refund_id: str, charge: str, ledger: list[LedgerEntry]) -> None:
        """A refund document carrying invoice-sync's marker that no record of the read ones names.
        A record is written after its refund is made, so when Stripe holds no refund of the charge
        from before the window every record of the charge was read: the record is unknown."""
        if not ledger or {"records", "source"} & set(self.result.incomplete):
            return
        refunds = self._stripe_refunds(charge)
        start = int(self.window_start.timestamp())
        if refunds is None or any(r.created < start for r in refunds):
            return  # its record may be older than the window: another window's subject
        known = "Stripe holds no refund of its charge" if not refunds else "Stripe holds its charge's refunds"
        self._add(
            DifferenceClass.UNKNOWN_TO_SOURCE,
            "refund",
            refund_id,
            ledger[0].currency,
            f"the ledger holds invoice-sync's refund document, invoice-sync has no record of it ({known})",
            ledger=ledger,
        )

    def _judge_charges(self) -> None:
        """Stripe against invoice-sync's records, per charge refunded in the window: every
        ``charge.refunded`` makes a record named by the charge's running ``amount_refunded`` (the
        part a credit note gives back included), so the highest one recorded is the charge's
        refunded total at Stripe, the sum of its refunds that did not fail."""
        if {"records", "source"} & set(self.result.incomplete):
            return
        for charge, listed_currency in sorted(self._window_charges.items()):
            refunds = self._stripe_refunds(charge)
            if refunds is None:
                return
            refunded = sum(r.amount for r in refunds if r.status not in NOT_REFUNDED)
            recorded = self._recorded.get(charge)
            if (recorded or 0) == refunded:
                continue
            currency = (refunds[0].currency if refunds else listed_currency).upper()
            detail = (
                "no refund record of the charge"
                if recorded is None
                else f"the records hold {format_amount(recorded, currency)} refunded on the charge"
            )
            self.result.differences.append(
                Difference(
                    cls=DifferenceClass.MISSING_IN_RECORDS,
                    kind="refund",
                    source_id=charge,
                    currency=currency,
                    detail=f"Stripe refunded {format_amount(refunded, currency)}, {detail}",
                    number=charge,
                    source_amount=refunded,
                    ledger_amount=recorded or 0,
                    ledger_ids=(),
                )
            )

    def _judge(self, key: tuple[str, str]) -> None:
        kind, source_id = key
        source = self._sources.get(key)
        record = self._records.get(key)
        ledger = list(self._ledger.get(key, ()))
        if record and record.ledger_id and (kind, record.ledger_id) in self._unmarked:
            ledger.append(self._unmarked[(kind, record.ledger_id)])  # its marker is gone (a QBO void)
        if source is None:
            if record is not None and record.created is not None and record.created < self.window_start:
                return  # an older document touched in the window: another window's subject
            if self._lookup is None or "source" in self.result.incomplete:
                return
            source = self._lookup(kind, source_id)
            if source is None:
                if ledger:
                    self._add(
                        DifferenceClass.UNKNOWN_TO_SOURCE,
                        kind,
                        source_id,
                        ledger[0].currency,
                        "the ledger holds invoice-sync's copy of a document the source does not know",
                        ledger=ledger,
                    )
                return
            if source.created < int(self.window_start.timestamp()):
                return
        if kind == "payment":
            if record is not None and record.status == SyncStatus.SKIPPED.value:
                return  # push found nothing to book (the ledger holds that money already)
            if source is not None and self._from_ledger(source):
                return  # the ledger's own payment, sent to Stripe: the other direction's subject
            if source is not None and source.cumulative and self._back is not None and source.invoice_id:
                # Push books Stripe's paid total less what payments back sent (design 3.6 loop 2).
                source = replace(source, total=source.total - (self._sent_to(source.invoice_id) or 0))
            self._judge_payment(source, ledger)
            return
        if record is not None and record.status == SyncStatus.SKIPPED.value:
            return  # nothing to put in the books (a draft)
        live = [e for e in ledger if not e.voided]
        if not ledger:
            if "ledger" in self.result.incomplete:
                return
            why = f"record {record.status}" if record else "never synced"
            self._add(DifferenceClass.MISSING_IN_LEDGER, kind, source_id, source.currency, why, source=source)
            return
        if len(live) > 1:
            self._add(
                DifferenceClass.DUPLICATE_IN_LEDGER,
                kind,
                source_id,
                source.currency,
                f"{len(live)} live ledger documents for one source document: void all but one",
                source=source,
                ledger=live,
            )
        self._judge_document(source, live[0] if live else ledger[0])

    def _judge_document(self, source: SourceDoc, entry: LedgerEntry) -> None:
        def add(cls: DifferenceClass, detail: str, *, amounts: bool = False) -> None:
            self._add(
                cls,
                source.kind,
                source.source_id,
                source.currency,
                detail,
                source=source,
                ledger=[entry],
                amounts=amounts,
            )

        if entry.currency != source.currency:
            add(
                DifferenceClass.CURRENCY_DIFFERS,
                f"{source.currency} at the source, {entry.currency} in the ledger",
            )
            return
        source_void = source.status == "void"
        if source_void != entry.voided:
            add(
                DifferenceClass.STATUS_DIFFERS,
                "void at the source, live in the ledger" if source_void else "void in the ledger only",
            )
            return
        if source_void:
            return
        gap = entry.total - source.total
        if gap:
            tax_gap = None if entry.tax is None else entry.tax - source.tax
            if (tax_gap and tax_gap == gap) or abs(gap) <= ROUNDING_MINOR_UNITS:
                detail = (
                    f"tax {format_amount(entry.tax or 0, source.currency)} in the ledger, "
                    f"{format_amount(source.tax, source.currency)} at the source"
                    if tax_gap
                    else "rounding"
                )
                add(DifferenceClass.TAX_OR_ROUNDING_DIFFERS, detail, amounts=True)
            else:
                add(DifferenceClass.AMOUNT_DIFFERS, "totals differ", amounts=True)
            return
        if source.kind == "invoice":
            if source.status == "paid" and entry.balance > 0:
                add(DifferenceClass.STATUS_DIFFERS, "paid at the source, open in the ledger")
            elif source.status == "open" and entry.balance == 0 and entry.total > 0:
                add(DifferenceClass.STATUS_DIFFERS, "open at the source, paid in the ledger")

    def _from_ledger(self, source: SourceDoc) -> bool:
        """A Stripe payment that is a payment record payments back reported for a ledger payment:
        the ledger holds the person's payment, never a copy of this one."""
        if self._back is None:
            return False
        if source.cumulative and source.invoice_id is not None:
            # Stripe's paid total so far counts the money payments back sent (basil: amount_paid
            # includes out-of-band payments): none of it is push's when the records sent it all.
            sent = self._sent_to(source.invoice_id)
            return sent is None or source.total <= sent
        if source.payment_record is None:
            return False
        if any(r.stripe_object == source.payment_record for r in self._back_records.values()):
            return True
        try:
            return self._back.from_ledger(source.payment_record)
        except Exception as exc:  # noqa: BLE001 - records that cannot be read prove nothing
            self.mark_incomplete("records", f"{exc.__class__.__name__}: {exc}")
            return True  # not claimed: it may be payments back's

    def _sent_to(self, invoice_id: str) -> int | None:
        """What the synced ``ledger_payment`` records of a Stripe invoice sent, read once; None
        when they cannot be read (the records' side is then incomplete)."""
        if invoice_id not in self._sent:
            records = self._invoice_back_records(invoice_id)
            self._sent[invoice_id] = (
                None
                if records is None
                else sum(r.ledger_total or 0 for r in records if r.status is SyncStatus.SYNCED)
            )
        return self._sent[invoice_id]

    def _invoice_back_records(self, invoice_id: str) -> list[SyncRecord] | None:
        """Every ``ledger_payment`` record of a Stripe invoice: the window's and, read by key, those
        its invoice record names; None (and the records' side incomplete) when they cannot be read."""
        assert self._back is not None
        try:
            found = {r.source_id: r for r in self._back.invoice_records(invoice_id)}
        except Exception as exc:  # noqa: BLE001 - records that cannot be read prove nothing
            self.mark_incomplete("records", f"{exc.__class__.__name__}: {exc}")
            return None
        window = {k: r for k, r in self._back_records.items() if r.source_target == invoice_id}
        return sorted({**window, **found}.values(), key=lambda r: r.source_id)

    def _judge_payment(self, source: SourceDoc | None, ledger: list[LedgerEntry]) -> None:
        if source is None:
            return
        live = [e for e in ledger if not e.voided]
        if not live:
            invoice_missing = source.invoice_id is not None and not self._ledger.get(
                ("invoice", source.invoice_id)
            )
            if "ledger" in self.result.incomplete or invoice_missing:
                return  # the invoice's own absence is the difference to report
            self._add(
                DifferenceClass.PAYMENT_NOT_APPLIED,
                "payment",
                source.source_id,
                source.currency,
                f"paid at the source on invoice {source.invoice_id}, no payment in the ledger",
                source=source,
            )
            return
        if len(live) > 1:
            self._add(
                DifferenceClass.PAYMENT_APPLIED_TWICE,
                "payment",
                source.source_id,
                source.currency,
                f"{len(live)} ledger payments for one source payment: void all but one",
                source=source,
                ledger=live,
            )
        elif live[0].total != source.total:
            self._add(
                DifferenceClass.AMOUNT_DIFFERS,
                "payment",
                source.source_id,
                source.currency,
                "payment amounts differ",
                source=source,
                ledger=live,
                amounts=True,
            )

    def _add(
        self,
        cls: DifferenceClass,
        kind: str,
        source_id: str,
        currency: str | None,
        detail: str,
        *,
        source: SourceDoc | None = None,
        ledger: list[LedgerEntry] | None = None,
        amounts: bool = True,
    ) -> None:
        ledger = ledger or []
        self.result.differences.append(
            Difference(
                cls=cls,
                kind=kind,
                source_id=source_id,
                currency=currency,
                detail=detail,
                number=(source.number if source else None) or (ledger[0].number if ledger else None),
                source_amount=source.total if source and amounts else None,
                ledger_amount=sum(e.total for e in ledger) if ledger and amounts else None,
                ledger_ids=tuple(e.ledger_id for e in ledger),
            )
        )


def not_to_send(payment: LedgerPayment | None, since: datetime | None) -> str | None:
    """Why payments back rightly sends a ledger payment nowhere and keeps no record of it (design
    two-way 3.3: gone or void, ours, older than payments back, paying no invoice); None when it
    must have a record."""
    if payment is None or payment.voided:
        return "removed or void in the ledger"
    if any((text or "").strip().startswith(MARKER_PREFIX) for text in (payment.note, payment.reference)):
        return "booked by invoice-sync"
    if since is not None and payment.updated_at is not None and payment.updated_at < since:
        return "made before payments back was turned on"
    if not any(application.amount > 0 for application in payment.applications):
        return "pays no invoice"
    return None


# --- the absence check ---------------------------------------------------------------------------


def usual_level(history: Iterable[dict[str, Any]], weekday: int, runs: int = 8) -> float | None:
    """The usual number of records synced on a ``weekday`` (0 = Monday): the median of that weekday
    over the last ``runs`` complete runs of it; None with fewer than three to go on."""
    counts = [
        int(h["synced"])
        for h in history
        if h.get("weekday") == weekday and h.get("status") != "incomplete" and "synced" in h
    ][-runs:]
    if len(counts) < 3:
        return None
    ordered = sorted(counts)
    middle = len(ordered) // 2
    return float(ordered[middle]) if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def absence(synced: int, usual: float | None, ratio: float = 0.25) -> str | None:
    """Why the day's count is an incident (far below its usual level), or None."""
    if usual is None or usual < 4 or synced >= usual * ratio:
        return None
    return f"{synced} records synced, usually {usual:g} on this weekday (alert below {ratio:.0%})"


def now() -> datetime:
    return datetime.now(UTC)


def iterate(pages: Iterable[list[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    for page in pages:
        yield from page
