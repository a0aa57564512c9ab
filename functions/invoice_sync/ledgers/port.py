"""The ledger port: what push needs from any accounting system, in ledger-neutral terms.

Drafts are what invoice-sync wants the ledger to hold (already mapped onto ledger ids, with
``Decimal`` money); ``LedgerDocument`` is what the ledger says it holds. Each adapter turns drafts
into its own payloads with pure functions and maps its errors onto ``invoice_sync.errors``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal, Protocol

from invoice_sync.errors import LedgerError


@dataclass(frozen=True)
class LineDraft:
    item_id: str
    description: str
    quantity: int
    amount: Decimal  # excluding tax, before the line's discount
    tax_code: str
    discount: Decimal = Decimal(0)  # the line's share of discounts (Xero puts it on the line)
    tax: Decimal = Decimal(0)  # the source's tax on this line, every rate together
    account: str | None = None  # Xero account code; QBO items carry their own

    def priced(self, places: int, money_places: int | None = None) -> tuple[Decimal, Decimal]:
        """(quantity, unit price) whose product rounds to the amount, with ``places`` decimals.

        Where no unit price of that precision multiplies back to the amount (12.34 for a million
        units of usage), the line goes as one unit of its amount: the money must be exact, the
        quantity is only descriptive.

        The ledger multiplies back and rounds half-up to ``money_places`` decimals, and so is this
        checked: by default the currency's minor unit, which is the amount's own exponent (0 for
        JPY, 3 for KWD), as QBO and Xero round; FreshBooks keeps every currency to the cent (2).
        """
        step = Decimal(1).scaleb(-places)
        exponent = -money_places if money_places is not None else int(self.amount.as_tuple().exponent)
        minor = Decimal(1).scaleb(min(0, exponent))
        if self.quantity > 0:
            unit = (self.amount / self.quantity).quantize(step, rounding=ROUND_HALF_UP)
            if (unit * self.quantity).quantize(minor, rounding=ROUND_HALF_UP) == self.amount:
                return Decimal(self.quantity), unit
        return Decimal(1), self.amount


@dataclass(frozen=True)
class InvoiceDraft:
    source_id: str
    customer_id: str
    number: str | None
    issued_on: date
    due_on: date | None
    currency: str
    lines: tuple[LineDraft, ...]
    discount: Decimal
    tax: Decimal
    total: Decimal
    memo: str | None
    private_note: str


@dataclass(frozen=True)
class PaymentDraft:
    source_id: str
    customer_id: str
    invoice_id: str
    amount: Decimal
    currency: str
    paid_on: date
    private_note: str
    account: str | None = None  # where the money lands (Xero requires it)


@dataclass(frozen=True)
class LedgerDocument:
    id: str
    # The ledger's concurrency token (QBO SyncToken); None where the ledger has none.
    version: str | None
    number: str | None
    total: Decimal
    balance: Decimal
    currency: str
    private_note: str | None = None
    voided: bool = False
    linked_payment_ids: tuple[str, ...] = field(default=())
    # Filled by ``list_documents`` (reconciliation): the tax the ledger holds (None where its list
    # does not say) and when the ledger last changed the document.
    tax: Decimal | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class PaymentApplication:
    invoice_id: str  # ledger id of the invoice the money is applied to
    amount: Decimal  # applied to that invoice (ledger currency decimals)


@dataclass(frozen=True)
class LedgerPayment:
    """Money received in the ledger, as ``get_ledger_payment`` / ``list_ledger_payments`` read it:
    whether invoice-sync booked it (its marker in ``note``) or a person recorded it there."""

    id: str
    version: str | None  # QBO SyncToken, Xero UpdatedDateUTC, FreshBooks payloads.version
    currency: str
    total: Decimal
    paid_on: date
    note: str | None  # QBO PrivateNote, Xero Reference, FreshBooks note: where the marker lives
    reference: str | None  # QBO PaymentRefNum, Xero Reference, FreshBooks type and note
    method: str | None  # QBO PaymentMethodRef name, Xero Account name, FreshBooks type
    # Invoices only (a credit memo's or credit note's share is left out); a voided payment still
    # says what it applied, and ``voided`` says it no longer counts.
    applications: tuple[PaymentApplication, ...]
    voided: bool = False
    updated_at: datetime | None = None
    deposit_account: str | None = None  # QBO DepositToAccountRef, Xero Account code


# What one line of a payout's deposit is (design 3.5.2 step 8): a payment or refund push booked
# (moved out of the clearing / undeposited-funds account), the payout's fees, a dispute or other
# adjustment, or money in the payout that no synced payment accounts for.
DepositLineKind = Literal["payment", "refund", "fee", "adjustment", "unmatched"]


@dataclass(frozen=True)
class DepositLine:
    kind: DepositLineKind
    amount: Decimal  # signed, ledger currency decimals: into the bank +, out of it - (fees, refunds)
    description: str
    # payment / refund lines: the ledger document (QBO Payment / RefundReceipt id, Xero payment or
    # credit-note payout id) whose money the deposit moves; None on the other kinds.
    ledger_id: str | None = None
    # fee / adjustment / unmatched lines: the account they post to (QBO account id, Xero account
    # code, FreshBooks expense category id); None on payment and refund lines.
    account: str | None = None
    source_id: str | None = None  # the Stripe balance transaction (txn_...) the line comes from


@dataclass(frozen=True)
class DepositDraft:
    """A Stripe payout as the bank sees it: one deposit equal to the bank line to the cent
    (``total`` is the sum of ``lines``). QBO books one Deposit; Xero books the fees and adjustments
    out of the clearing account and one transfer of ``total`` to ``bank_account``; FreshBooks, which
    has no deposit API, books the fee lines as one expense (``deposit_support``)."""

    source_id: str  # po_...
    number: str  # the reference the deposit carries, e.g. "PO-1QxYz" (how it is found again)
    arrival_on: date
    currency: str
    bank_account: str | None  # QBO bank account id, Xero bank account code; None for FreshBooks
    # Xero: the clearing account payments landed in (the connection's payment_account).
    clearing_account: str | None
    contact_id: str | None  # Xero: the "Stripe" supplier contact its bank transactions need
    lines: tuple[DepositLine, ...]
    total: Decimal
    private_note: str  # marker(source, po_...)

    def __post_init__(self) -> None:
        if sum((line.amount for line in self.lines), Decimal(0)) != self.total:
            raise ValueError(f"deposit {self.number}: its lines do not add up to its total {self.total}")


# How a ledger books a payout: one deposit document (QBO), clearing-account transactions and one
# transfer (Xero), or only the fees as an expense, the rest left to a deposit slip (FreshBooks).
DepositSupport = Literal["deposit", "transfer", "fees_only"]


# How many payments one ``list_ledger_payments`` page carries at most.
PAYMENT_PAGE_SIZE = 100


# The ledger's own kinds of sales document, as ``list_documents`` names them.
ListedKind = Literal["invoice", "credit_note", "refund", "payment"]


@dataclass(frozen=True)
class LedgerContact:
    id: str
    name: str
    # The source customer this contact was created for (QBO Notes, Xero ContactNumber); None for
    # a contact someone else created in the ledger.
    reference: str | None = None


@dataclass(frozen=True)
class ChartEntry:
    """One item, account or tax code of the ledger, named as a mapping rule names it."""

    id: str  # QBO: the Id; Xero: the item/account code or the TaxType; FreshBooks: the name
    name: str
    active: bool
    type: str | None = None  # account type (QBO AccountType, Xero Type), item type
    # Usable on a sales document: a revenue account, an item that is sold, a tax for sales.
    sales: bool = True
    # Money can be received into or paid out of it (a bank account, or payments enabled).
    payments: bool = False


@dataclass(frozen=True)
class Chart:
    """What mapping rules may point at. ``accounts`` is None for a ledger whose API has no chart of
    accounts to name (FreshBooks: lines name items and taxes only)."""

    items: tuple[ChartEntry, ...]
    tax_codes: tuple[ChartEntry, ...]
    accounts: tuple[ChartEntry, ...] | None

    def counts(self) -> dict[str, int]:
        return {
            "items": len(self.items),
            "tax_codes": len(self.tax_codes),
            "accounts": len(self.accounts or ()),
        }


class LedgerPort(Protocol):
    """Every call may raise the ``LedgerError`` family; writes carry an idempotency key."""

    # How many documents one ``create_invoices`` request carries (1: the ledger has no batch call).
    batch_size: int

    def create_invoices(
        self, items: Sequence[tuple[InvoiceDraft, str]]
    ) -> list[LedgerDocument | LedgerError]:
        """Creates several invoices in one request; each item's outcome is its document or its own
        error (the request as a whole fails only by raising)."""
        ...

    def chart(self) -> Chart:
        """Every item, account and tax code, inactive ones included (all pages)."""
        ...

    def find_customer(self, name: str) -> LedgerContact | None: ...

    def create_customer(
        self, name: str, email: str | None, currency: str, reference: str, idempotency_key: str
    ) -> LedgerContact: ...

    def find_invoice(self, number: str) -> LedgerDocument | None: ...

    def get_invoice(self, ledger_id: str) -> LedgerDocument: ...

    def create_invoice(self, draft: InvoiceDraft, idempotency_key: str) -> LedgerDocument: ...

    def update_invoice(
        self, ledger_id: str, version: str | None, draft: InvoiceDraft, idempotency_key: str
    ) -> LedgerDocument: ...

    def void_invoice(self, ledger_id: str, version: str | None, idempotency_key: str) -> LedgerDocument: ...

    def get_payment(self, ledger_id: str) -> LedgerDocument: ...

    # Credit notes take an invoice draft's shape; ``balance`` is the credit not yet applied.
    def find_credit_note(self, number: str) -> LedgerDocument | None: ...

    def get_credit_note(self, ledger_id: str) -> LedgerDocument: ...

    def create_credit_note(self, draft: InvoiceDraft, idempotency_key: str) -> LedgerDocument: ...

    def apply_credit_note(
        self, credit_note_id: str, invoice_id: str, customer_id: str, amount: Decimal, idempotency_key: str
    ) -> None: ...

    def void_credit_note(
        self, ledger_id: str, version: str | None, idempotency_key: str
    ) -> LedgerDocument: ...

    def create_payment(self, draft: PaymentDraft, idempotency_key: str) -> LedgerDocument: ...

    # Refunds: money paid back to a customer. A refund document takes an invoice draft's shape
    # (its lines say what revenue it takes back) and names the account the money leaves from.
    # ``balance`` is the part not yet paid out: a QBO RefundReceipt is paid out as it is created
    # (balance 0); Xero and FreshBooks book a credit note, which ``pay_out_credit`` then pays out.
    def find_refund(self, number: str) -> LedgerDocument | None: ...

    def get_refund(self, ledger_id: str) -> LedgerDocument: ...

    def create_refund(
        self, draft: InvoiceDraft, paid_from: str | None, idempotency_key: str
    ) -> LedgerDocument: ...

    def pay_out_credit(self, draft: PaymentDraft, idempotency_key: str) -> LedgerDocument:
        """Pays money out of a credit document already in the ledger (``draft.invoice_id`` is its
        ledger id, ``draft.account`` where the money leaves from). Returns the payout, which the
        credit document then lists in ``linked_payment_ids`` and ``get_payment`` reads back with its
        ``private_note``. A ledger with no such call raises ``Unsupported``."""
        ...

    def get_ledger_payment(self, ledger_id: str) -> LedgerPayment:
        """A payment into invoices, whoever recorded it; ``NotFound`` when the ledger has none."""
        ...

    def list_ledger_payments(self, since: datetime, page: int) -> tuple[list[LedgerPayment], bool]:
        """Page ``page`` (from 1) of the payments the ledger changed at or after ``since``, oldest
        change first, at most ``PAYMENT_PAGE_SIZE`` of them, voided ones included; the bool says
        whether a further page may hold more."""
        ...

    deposit_support: DepositSupport

    def find_deposit(self, draft: DepositDraft) -> LedgerDocument | None:
        """The deposit (Xero: the transfer; FreshBooks: the fee expense) already booked for this
        payout, adopted only when it carries ``draft.private_note``'s marker; None when there is
        none. Found by ``draft.number``: QBO among the deposits of ``draft.arrival_on``; Xero the
        transfer whose Reference is marker + number; FreshBooks the arrival day's expense whose
        notes are marker + " fees " + number."""
        ...

    def create_deposit(self, draft: DepositDraft, idempotency_key: str) -> LedgerDocument:
        """Books the payout as ``deposit_support`` says, every write carrying the marker and an
        idempotency key derived from ``idempotency_key``. Returns the document ``find_deposit``
        finds again, its ``total`` the deposit's (FreshBooks: the fee expense's; for a payout
        without fees a deposit of 0 whose id is the payout's, nothing written)."""
        ...

    def get_deposit(self, ledger_id: str) -> LedgerDocument:
        """A deposit (Xero: transfer; FreshBooks: expense) by id, for reconciliation; ``NotFound``."""
        ...

    def list_documents(
        self, kind: ListedKind, since: datetime, until: datetime | None = None
    ) -> Iterator[LedgerDocument]:
        """The documents of ``kind`` the ledger last changed between ``since`` and ``until`` (default:
        now), voided ones included, read page by page through the ledger's query API within its
        limits (the adapter's HTTP plumbing). ``tax`` and ``updated_at`` are filled. A ledger whose
        refunds are credit notes (Xero, FreshBooks) lists them under ``credit_note`` and no document
        under ``refund``."""
        ...


# What every note invoice-sync writes starts with: ``marker``'s notes, and the notes of credit
# applications and payouts. A ledger payment whose note or reference starts with it is ours.
MARKER_PREFIX = "invoice-sync:"


def marker(source: str, source_id: str) -> str:
    """The note that identifies a ledger document as invoice-sync's copy of one source document."""
    return f"{MARKER_PREFIX} {source} {source_id}"


def marked(note: str | None) -> tuple[str, str] | None:
    """(source, source id) a ledger note's marker names; None for a note without one (a document
    someone made in the ledger, or a QBO void that replaced the note)."""
    text = (note or "").strip()
    if not text.startswith(f"{MARKER_PREFIX} "):
        return None
    parts = text[len(MARKER_PREFIX) + 1 :].split()
    return (parts[0], parts[1]) if len(parts) >= 2 else None


class _CreditNotes(Protocol):
    def find_credit_note(self, number: str) -> LedgerDocument | None: ...

    def get_credit_note(self, ledger_id: str) -> LedgerDocument: ...

    def create_credit_note(self, draft: InvoiceDraft, idempotency_key: str) -> LedgerDocument: ...


class RefundIsCreditNote:
    """Refunds for a ledger with no refund document (Xero, FreshBooks): the refund is a credit note,
    created, found and read as one (so with the same protection against a second copy), whose
    lines take the revenue back; ``pay_out_credit`` then names the account the money leaves."""

    def find_refund(self: _CreditNotes, number: str) -> LedgerDocument | None:
        return self.find_credit_note(number)

    def get_refund(self: _CreditNotes, ledger_id: str) -> LedgerDocument:
        return self.get_credit_note(ledger_id)

    def create_refund(
        self: _CreditNotes,
        draft: InvoiceDraft,
        paid_from: str | None,  # noqa: ARG002 - named when the credit is paid out
        idempotency_key: str,
    ) -> LedgerDocument:
        return self.create_credit_note(draft, idempotency_key)


def in_window(document: LedgerDocument, since: datetime, until: datetime | None) -> bool:
    """Whether a listed document's change time is inside the window (for a ledger whose query
    takes only a lower bound, the upper one is checked here)."""
    moment = document.updated_at
    if moment is None:
        return True
    return since <= moment and (until is None or moment <= until)


def one_by_one(
    create: Callable[[InvoiceDraft, str], LedgerDocument], items: Sequence[tuple[InvoiceDraft, str]]
) -> list[LedgerDocument | LedgerError]:
    """``create_invoices`` for a ledger without a batch call: one request each, same outcomes."""
    outcomes: list[LedgerDocument | LedgerError] = []
    for draft, key in items:
        try:
            outcomes.append(create(draft, key))
        except LedgerError as error:
            outcomes.append(error)
    return outcomes


def as_decimal(value: object) -> Decimal:
    """A ledger's JSON number (parsed as Decimal, int or string) as an exact Decimal; absent is 0."""
    return value if isinstance(value, Decimal) else Decimal(str(value or 0))
