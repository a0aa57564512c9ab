"""``LedgerPort`` for FreshBooks.

FreshBooks has neither idempotency keys nor unique invoice numbers nor unique client names, so the
adapter supplies what the port promises:

* **Numbers and names.** Before creating an invoice it looks the number up (``search[invoice_number]``)
  and raises ``DuplicateNumber`` if a live invoice has it; before creating a client it looks the
  organization up and raises ``DuplicateName``. push then adopts the document it finds, by marker.
* **Replays.** The adapter remembers, in memory, which document each idempotency key created (the
  last ``REPLAY_MEMORY`` keys). A create repeated with the same key in the same warm process answers
  with that document, as QBO's ``requestid`` and Xero's ``Idempotency-Key`` do within their windows.
  That memory is this ledger's whole "idempotency window": after a cold start the number lookup
  above is the guarantee, exactly as it is for the other ledgers once their caches expire.
* **Versions.** The port's version is ``updated`` plus a digest of the invoice (``payloads.version``):
  it is checked before an update or a void, and ``updated`` goes with the PUT so FreshBooks answers
  409 (``StaleObject``) if the invoice changes in between.
* **Void.** FreshBooks cannot void; the invoice is deleted (``vis_state`` 1), which keeps it in the
  trash, and reported as ``voided``.
* **Refunds.** A refund is a credit note (booked exactly as ``create_credit_note`` books one) whose
  credit is then paid out. FreshBooks' API has no way to pay a credit out (see ``pay_out_credit``), so
  that step raises ``Unsupported`` and the refund is parked for a person with what to record by hand.
* **Webhooks.** FreshBooks sends a new callback's verifier to its address; ``verify_callback`` sends
  it back (``PUT /events/account/{id}/events/callbacks/{callback_id}``) so the callback goes live.
  A verifier FreshBooks refuses is a ``LedgerValidation``: never a key.
* **Payouts** (design two-way 3.9, ``deposit_support`` "fees_only"). FreshBooks' API has no
  deposit, so ``create_deposit`` books only the payout's fee lines, as one expense of their total
  (``expenses/expenses``: the fee category, vendor "Stripe", dated the arrival day, notes = marker
  + " fees " + number); payment, refund and other lines are not booked (the deposit slip carries
  them). The expense is found again by its notes among the arrival day's expenses, so a retry
  after a lost answer adopts it. A payout with no fees to book writes nothing and answers a
  deposit of 0 whose id is the payout's own id (``payloads.no_fee_document``), from
  ``create_deposit`` and ``find_deposit`` alike: push's "create once" needs no FreshBooks case,
  and the payments it links still get a ``deposit_id``.
* **Items.** FreshBooks lines take any name, so a mapping that names an item the account does not
  have would go through unnoticed; lines are checked against the account's items (listed once per
  warm process, again when a name is missing) and refused with ``LedgerValidation`` instead.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from invoice_sync.errors import (
    DuplicateName,
    DuplicateNumber,
    LedgerError,
    LedgerValidation,
    NotFound,
    StaleObject,
    Unsupported,
)
from invoice_sync.ledgers.freshbooks import payloads
from invoice_sync.ledgers.freshbooks.client import PER_PAGE, FreshBooksClient
from invoice_sync.ledgers.port import (
    MARKER_PREFIX,
    PAYMENT_PAGE_SIZE,
    Chart,
    ChartEntry,
    DepositDraft,
    DepositSupport,
    InvoiceDraft,
    LedgerContact,
    LedgerDocument,
    LedgerPayment,
    ListedKind,
    PaymentDraft,
    RefundIsCreditNote,
    in_window,
    one_by_one,
)

CLIENTS = "users/clients"
INVOICES = "invoices/invoices"
PAYMENTS = "payments/payments"
ITEMS = "items/items"
CREDIT_NOTES = "credit_notes/credit_notes"
TAXES = "taxes/taxes"
EXPENSES = "expenses/expenses"
CALLBACKS = "events/callbacks"  # under the events API's account root, not the accounting one
REPLAY_MEMORY = 1024
ACCOUNTING_TZ = payloads.ACCOUNTING_TZ


class FreshBooksLedger(RefundIsCreditNote):
    # Payouts: only the fee lines are booked, as one expense. A payout without fees books nothing
    # and answers a deposit of 0 under the payout's own id (find_deposit and create_deposit alike),
    # rather than raising, so push's create-once treats FreshBooks like the other ledgers.
    deposit_support: DepositSupport = "fees_only"
    batch_size = 1  # FreshBooks has no batch call
    chart_page_size = PER_PAGE
    list_page_size = PER_PAGE
    payment_page_size = PAYMENT_PAGE_SIZE  # list_ledger_payments' pages (the port's most)

    def __init__(self, client: FreshBooksClient) -> None:
        self.client = client
        self._replays: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._items: set[str] | None = None
        self._creating_client = threading.Lock()

    def create_invoices(
        self, items: Sequence[tuple[InvoiceDraft, str]]
    ) -> list[LedgerDocument | LedgerError]:
        return one_by_one(self.create_invoice, items)

    # --- replay memory ----------------------------------------------------------------------------

    def _replayed(self, kind: str, key: str) -> str | None:
        return self._replays.get((kind, key))

    def _remember(self, kind: str, key: str, ledger_id: str) -> None:
        self._replays[(kind, key)] = ledger_id
        while len(self._replays) > REPLAY_MEMORY:
            self._replays.popitem(last=False)

    def forget_replays(self) -> None:
        """Forget every key, as a cold start does (the contract's "after the idempotency window")."""
        self._replays.clear()

    # --- listing (reconciliation) ------------------------------------------------------------

    def list_documents(
        self, kind: ListedKind, since: datetime, until: datetime | None = None
    ) -> Iterator[LedgerDocument]:
        """``search[updated_min]`` / ``search[updated_max]`` (Eastern wall-clock time, as FreshBooks
        keeps ``updated``) and ``page`` / ``per_page`` pages of 100, deleted documents included
        (``vis_state`` 1 is how invoice-sync voids). Refunds are credit notes here, listed under
        ``credit_note``. An invoice's payments are not read one invoice at a time: ``payment``
        lists them."""
        if kind == "refund":
            return
        path, collection = {
            "invoice": (INVOICES, "invoices"),
            "credit_note": (CREDIT_NOTES, "credit_notes"),
            "payment": (PAYMENTS, "payments"),
        }[kind]
        search = {"updated_min": since.astimezone(ACCOUNTING_TZ).strftime("%Y-%m-%d %H:%M:%S")}
        if until is not None:
            search["updated_max"] = until.astimezone(ACCOUNTING_TZ).strftime("%Y-%m-%d %H:%M:%S")
        for state in ("0", "1"):  # live, then deleted (FreshBooks lists deleted ones only on request)
            search_state = {**search, "vis_state": state}
            for row in self.client.pages(path, collection, search_state, per_page=self.list_page_size):
                if kind == "invoice":
                    document = payloads.invoice_document(row)
                elif kind == "credit_note":
                    document = payloads.credit_note_document(row)
                else:
                    document = payloads.payment_document(row)
                document = replace(document, updated_at=payloads.eastern(row.get("updated")))
                if in_window(document, since, until):
                    yield document

    # --- chart -------------------------------------------------------------------------------------

    def chart(self) -> Chart:
        """The account's items (archived ones inactive; deleted ones are not listed) and taxes, all
        pages, by name: lines name them so. FreshBooks lines post to no account a mapping names."""
        size = self.chart_page_size
        items = self.client.list(ITEMS, "items", per_page=size)
        taxes = self.client.list(TAXES, "taxes", per_page=size)
        return Chart(
            items=tuple(
                ChartEntry(
                    id=str(i.get("name", "")), name=str(i.get("name", "")), active=i.get("vis_state", 0) == 0
                )
                for i in items
            ),
            tax_codes=tuple(
                ChartEntry(
                    id=str(t.get("name", "")), name=f"{t.get('name', '')} {t.get('amount', '')}%", active=True
                )
                for t in taxes
            ),
            accounts=None,
        )

    # --- customers --------------------------------------------------------------------------------

    def _clients_named(self, name: str) -> list[dict[str, Any]]:
        # organization_like is a substring search: keep the exact matches only.
        found = self.client.list(CLIENTS, "clients", {"organization_like": name})
        return [c for c in found if str(c.get("organization") or "").casefold() == name.casefold()]

    def find_customer(self, name: str) -> LedgerContact | None:
        found = self._clients_named(name)
        exact = [c for c in found if c.get("organization") == name]
        return payloads.contact((exact or found)[0]) if found else None

    def create_customer(
        self, name: str, email: str | None, currency: str, reference: str, idempotency_key: str
    ) -> LedgerContact:
        # FreshBooks takes two clients of one name, so the look-up and the create must not
        # interleave with another thread's for the same customer (a backfill pushes several
        # batches at once): the second one then finds the first one's client.
        with self._creating_client:
            replayed = self._replayed("client", idempotency_key)
            if replayed is not None:
                return payloads.contact(self.client.get(f"{CLIENTS}/{replayed}", "client"))
            if self._clients_named(name):
                raise DuplicateName(f"FreshBooks: a client named {name!r} already exists", code="duplicate")
            created = self.client.write(
                "POST", CLIENTS, "client", payloads.client_body(name, email, currency, reference)
            )
            self._remember("client", idempotency_key, str(created["id"]))
            return payloads.contact(created)

    # --- invoices ---------------------------------------------------------------------------------

    def _document(self, invoice: dict[str, Any]) -> LedgerDocument:
        # FreshBooks invoices do not list their payments: ask for them by invoice.
        payments = self.client.list(PAYMENTS, "payments", {"invoiceid": str(invoice["id"])})
        return payloads.invoice_document(invoice, (str(p["id"]) for p in payments))

    def _live_numbered(self, number: str) -> list[dict[str, Any]]:
        found = self.client.list(INVOICES, "invoices", {"invoice_number": number})
        return [i for i in found if i.get("invoice_number") == number and i.get("vis_state") != 1]

    def find_invoice(self, number: str) -> LedgerDocument | None:
        found = self._live_numbered(number)
        if not found:
            return None
        # FreshBooks lets numbers repeat; prefer invoice-sync's own copy, then the oldest.
        ours = [i for i in found if (payloads.marker_of(i.get("notes")) or "").startswith(MARKER_PREFIX)]
        return self._document((ours or found)[0])

    def get_invoice(self, ledger_id: str) -> LedgerDocument:
        return self._document(self.client.get(f"{INVOICES}/{ledger_id}", "invoice"))

    def _check_items(self, draft: InvoiceDraft) -> None:
        wanted = {line.item_id for line in draft.lines if line.item_id}
        if self._items is None or not wanted <= self._items:
            self._items = {str(i.get("name")) for i in self.client.list(ITEMS, "items")}
        missing = sorted(wanted - self._items)
        if missing:
            raise LedgerValidation(
                f"FreshBooks: no item named {', '.join(map(repr, missing))} in this account's items; "
                "map the product to one of its item names",
                code="item",
            )

    def create_invoice(self, draft: InvoiceDraft, idempotency_key: str) -> LedgerDocument:
        replayed = self._replayed("invoice", idempotency_key)
        if replayed is not None:
            return self.get_invoice(replayed)
        body = payloads.invoice_body(draft)  # refuses an inexact copy before any call
        self._check_items(draft)
        if draft.number and self._live_numbered(draft.number):
            raise DuplicateNumber(
                f"FreshBooks: invoice number {draft.number!r} is already used by a live invoice",
                code="duplicate",
            )
        # Created and marked sent in one call, so no draft is ever left behind half-done.
        created = self.client.write("POST", INVOICES, "invoice", {**body, "action_mark_as_sent": True})
        self._remember("invoice", idempotency_key, str(created["id"]))
        return payloads.invoice_document(created)  # a new invoice has no payments yet

    def _current(self, ledger_id: str, version: str | None) -> dict[str, Any]:
        current = self.client.get(f"{INVOICES}/{ledger_id}", "invoice")
        now = payloads.version(current)
        if version is not None and now != version:
            raise StaleObject(
                f"FreshBooks invoice {ledger_id} changed since {version} (now {now})", code="409"
            )
        return current

    def update_invoice(
        self,
        ledger_id: str,
        version: str | None,
        draft: InvoiceDraft,
        idempotency_key: str,  # noqa: ARG002 - FreshBooks has no keys; the version guards the update
    ) -> LedgerDocument:
        body = payloads.invoice_body(draft)
        self._check_items(draft)
        current = self._current(ledger_id, version)
        renumbered = draft.number and draft.number != current.get("invoice_number")
        if renumbered and any(str(i["id"]) != ledger_id for i in self._live_numbered(draft.number or "")):
            raise DuplicateNumber(
                f"FreshBooks: invoice number {draft.number!r} is already used by a live invoice",
                code="duplicate",
            )
        if version is not None:
            body["updated"] = current["updated"]  # FreshBooks answers 409 if it moved since the read
        return self._document(self.client.write("PUT", f"{INVOICES}/{ledger_id}", "invoice", body))

    def void_invoice(
        self,
        ledger_id: str,
        version: str | None,
        idempotency_key: str,  # noqa: ARG002 - deleting twice is harmless
    ) -> LedgerDocument:
        current = self._current(ledger_id, version)
        body: dict[str, Any] = {"vis_state": 1}
        if version is not None:
            body["updated"] = current["updated"]
        return self._document(self.client.write("PUT", f"{INVOICES}/{ledger_id}", "invoice", body))

    # --- credit notes -----------------------------------------------------------------------------

    def _credit_document(self, note: dict[str, Any]) -> LedgerDocument:
        # The credit still unused: its total less the live payments drawn from it (creditid).
        drawn = self.client.list(PAYMENTS, "payments", {"creditid": str(note["id"])})
        applied = sum(
            (payloads.amount_of(p.get("amount")) for p in drawn if str(p.get("creditid")) == str(note["id"])),
            Decimal(0),
        )
        return payloads.credit_note_document(note, applied)

    def find_credit_note(self, number: str) -> LedgerDocument | None:
        found = self.client.list(CREDIT_NOTES, "credit_notes", {"credit_number": number})
        live = [c for c in found if c.get("credit_number") == number and c.get("vis_state") != 1]
        return self._credit_document(live[0]) if live else None

    def get_credit_note(self, ledger_id: str) -> LedgerDocument:
        return self._credit_document(self.client.get(f"{CREDIT_NOTES}/{ledger_id}", "credit_note"))

    def create_credit_note(self, draft: InvoiceDraft, idempotency_key: str) -> LedgerDocument:
        replayed = self._replayed("credit_note", idempotency_key)
        if replayed is not None:
            return self.get_credit_note(replayed)
        body = payloads.credit_note_body(draft)
        self._check_items(draft)
        if draft.number and self.find_credit_note(draft.number) is not None:
            raise DuplicateNumber(
                f"FreshBooks: credit note number {draft.number!r} is already used by a live credit note",
                code="duplicate",
            )
        created = self.client.write(
            "POST", CREDIT_NOTES, "credit_note", {**body, "action_mark_as_sent": True}
        )
        self._remember("credit_note", idempotency_key, str(created["id"]))
        return payloads.credit_note_document(created)

    def apply_credit_note(
        self,
        credit_note_id: str,
        invoice_id: str,
        customer_id: str,  # noqa: ARG002 - the payment knows the client from the invoice
        amount: Decimal,
        idempotency_key: str,
    ) -> None:
        if self._replayed("credit_application", idempotency_key) is not None:
            return
        note = self.client.get(f"{CREDIT_NOTES}/{credit_note_id}", "credit_note")
        body = payloads.credit_payment_body(
            credit_note_id, invoice_id, amount, str(note.get("currency_code") or ""), date.today().isoformat()
        )
        created = self.client.write("POST", PAYMENTS, "payment", body)
        self._remember("credit_application", idempotency_key, str(created["id"]))

    def void_credit_note(
        self,
        ledger_id: str,
        version: str | None,
        idempotency_key: str,  # noqa: ARG002 - deleting twice is harmless
    ) -> LedgerDocument:
        current = self.client.get(f"{CREDIT_NOTES}/{ledger_id}", "credit_note")
        now = payloads.version(current)
        if version is not None and now != version:
            raise StaleObject(
                f"FreshBooks credit note {ledger_id} changed since {version} (now {now})", code="409"
            )
        body: dict[str, Any] = {"vis_state": 1}
        if version is not None:
            body["updated"] = current["updated"]
        return self._credit_document(
            self.client.write("PUT", f"{CREDIT_NOTES}/{ledger_id}", "credit_note", body)
        )

    def pay_out_credit(self, draft: PaymentDraft, idempotency_key: str) -> LedgerDocument:  # noqa: ARG002
        # FreshBooks' API records no money paid out of a credit note, so nothing is sent. Evidence:
        # - freshbooks-sdk 1.3.0 (freshbooks/client.py) has no refund resource; credit notes are
        #   create/get/list/update/delete only.
        # - https://www.freshbooks.com/api/credits: a credit note's fields (credit_number, currency_code,
        #   create_date, notes, credit_type goodwill/prepayment, terms, language, lines, clientid) carry
        #   no refund or paid-out amount.
        # - https://www.freshbooks.com/api/payments: "a record of the payments made on your invoices";
        #   a payment needs an invoiceid, and creditid/from_credit only apply credit to an invoice.
        # - https://support.freshbooks.com/hc/en-us/articles/115011722588: refunds are made from online
        #   (gateway) payments on invoices; a manual refund is recorded by editing a payment.
        # The hand-made record is a journal entry (payloads.payout_by_hand says which).
        raise Unsupported(payloads.payout_by_hand(draft), code="unsupported")

    # --- payments ---------------------------------------------------------------------------------

    def get_payment(self, ledger_id: str) -> LedgerDocument:
        return payloads.payment_document(self.client.get(f"{PAYMENTS}/{ledger_id}", "payment"))

    def get_ledger_payment(self, ledger_id: str) -> LedgerPayment:
        return payloads.ledger_payment(self.client.get(f"{PAYMENTS}/{ledger_id}", "payment"))

    def list_ledger_payments(self, since: datetime, page: int) -> tuple[list[LedgerPayment], bool]:
        """``search[updated_min]`` (Eastern wall-clock time) over live and deleted payments, oldest
        change first, page ``page`` of 100.

        FreshBooks lists deleted payments only when asked (``vis_state`` 1) and publishes no sort
        order for payments, so one page cannot be read on its own: the whole window is read (pages
        of 100, live then deleted), ordered by ``updated`` here, and the page cut from it. Each
        call costs a request per 100 payments in the window; it serves reconciliation and a
        backfill, which read a bounded window, not a poll."""
        if page < 1:
            raise ValueError("pages are numbered from 1")
        search = {"updated_min": since.astimezone(ACCOUNTING_TZ).strftime("%Y-%m-%d %H:%M:%S")}
        rows = [
            row
            for state in ("0", "1")
            for row in self.client.pages(PAYMENTS, "payments", {**search, "vis_state": state})
        ]
        payments = [payloads.ledger_payment(row) for row in rows]
        floor = since.replace(microsecond=0)  # FreshBooks keeps ``updated`` to the second
        payments = [p for p in payments if p.updated_at is None or p.updated_at >= floor]
        payments.sort(key=lambda p: (p.updated_at or floor, int(p.id) if p.id.isdigit() else 0, p.id))
        size = self.payment_page_size
        start = (page - 1) * size
        return payments[start : start + size], len(payments) > start + size

    def create_payment(self, draft: PaymentDraft, idempotency_key: str) -> LedgerDocument:
        replayed = self._replayed("payment", idempotency_key)
        if replayed is not None:
            return self.get_payment(replayed)
        created = self.client.write("POST", PAYMENTS, "payment", payloads.payment_body(draft))
        self._remember("payment", idempotency_key, str(created["id"]))
        return payloads.payment_document(created)

    # --- payouts: the fee expense -----------------------------------------------------------------

    def find_deposit(self, draft: DepositDraft) -> LedgerDocument | None:
        """The live expense of the payout's arrival day whose notes are exactly this payout's
        (``payloads.fee_notes``: marker, "fees", number); an expense a person made, or another
        payout's, is never adopted. A payout with no fees finds its deposit of 0."""
        if payloads.fee_expense_body(draft) is None:
            return payloads.no_fee_document(draft)
        found = self._fee_expense(draft)
        return payloads.expense_document(found) if found is not None else None

    def create_deposit(self, draft: DepositDraft, idempotency_key: str) -> LedgerDocument:
        """``POST expenses/expenses`` of the fees' total, unless this key already made it (the
        replay memory) or the expense is there already (found by its notes: a retry after a lost
        answer). A payout with no fees writes nothing (see the module docstring)."""
        body = payloads.fee_expense_body(draft)  # checked before any call
        if body is None:
            return payloads.no_fee_document(draft)
        replayed = self._replayed("deposit", idempotency_key)
        if replayed is not None:
            return self.get_deposit(replayed)
        existing = self._fee_expense(draft)
        if existing is None:
            try:
                existing = self.client.write("POST", EXPENSES, "expense", body)
            except NotFound as missing:
                # An unknown category answers errno 1012 (a reference not found), which is the
                # connection's setting to fix, not a missing deposit.
                raise LedgerValidation(
                    f"{missing}: payout_fee_account {body['categoryid']} must be one of this "
                    "account's expense categories (GET expenses/categories)",
                    code=missing.code,
                ) from missing
        self._remember("deposit", idempotency_key, str(existing["id"]))
        return payloads.expense_document(existing)

    def get_deposit(self, ledger_id: str) -> LedgerDocument:
        """An expense by id; the payout id a payout without fees was recorded under reads as its
        deposit of 0 (nothing in FreshBooks)."""
        if ledger_id.startswith("po_"):
            return LedgerDocument(
                id=ledger_id, version=None, number=None, total=Decimal(0), balance=Decimal(0), currency=""
            )
        if not ledger_id.isdigit():
            raise NotFound(f"FreshBooks: no expense {ledger_id!r}", code="1012")
        return payloads.expense_document(self.client.get(f"{EXPENSES}/{ledger_id}", "expense"))

    def _fee_expense(self, draft: DepositDraft) -> dict[str, Any] | None:
        notes = payloads.fee_notes(draft)
        found = self.client.list(EXPENSES, "expenses", payloads.fee_expense_search(draft))
        ours = [e for e in found if e.get("notes") == notes and e.get("vis_state", 0) != 1]
        return ours[0] if ours else None

    # --- webhooks ---------------------------------------------------------------------------------

    def verify_callback(self, callback_id: str, verifier: SecretStr) -> None:
        """Sends a callback's verifier back (``PUT /events/account/{account_id}/events/callbacks/
        {callback_id}`` with ``{"callback": {"callback_id", "verifier"}}``, LEDGER-APIS 3.5), which
        makes FreshBooks deliver the callback's events. A refused verifier (400, errno 1004) is
        ``LedgerValidation``, an unknown callback ``NotFound``; 429/5xx are transient. Sending the
        right verifier again is harmless, so the PUT is retried in place like any update. The
        verifier is read out of its ``SecretStr`` only into the request body."""
        if not callback_id.isdigit():
            # FreshBooks' callback ids are integers; anything else is not a callback of this account.
            raise NotFound(f"FreshBooks: no callback {callback_id!r}", code="1012")
        self.client.events_write(
            "PUT",
            f"{CALLBACKS}/{callback_id}",
            "callback",
            {"callback_id": int(callback_id), "verifier": verifier.get_secret_value()},
        )
