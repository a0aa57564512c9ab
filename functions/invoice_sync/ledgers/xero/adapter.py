"""``LedgerPort`` for Xero.

Xero has no concurrency token: the adapter uses ``UpdatedDateUTC`` as the version and checks it
before an update, so a stale update fails as the port says it must. Writes carry
``Idempotency-Key`` and ``summarizeErrors=false``; each element's own errors are read back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from invoice_sync.errors import LedgerError, LedgerUnavailable, LedgerValidation, StaleObject
from invoice_sync.ledgers.http import LedgerHttp
from invoice_sync.ledgers.port import (
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
    as_decimal,
    in_window,
)
from invoice_sync.ledgers.xero import payloads
from invoice_sync.ledgers.xero.client import classify, validation_messages

WRITE_PARAMS = {"summarizeErrors": "false", "unitdp": "4"}
PAGE_SIZE = 100  # Xero's default page of invoices, credit notes and payments
# kind -> (collection, a where filter keeping sales documents only, the parser of one element)
LISTED: dict[str, tuple[str, str | None]] = {
    "invoice": ("Invoices", 'Type=="ACCREC"'),
    "credit_note": ("CreditNotes", 'Type=="ACCRECCREDIT"'),
    "payment": ("Payments", None),
}


def _failed(element: dict[str, Any]) -> bool:
    return bool(
        element.get("StatusAttributeString") == "ERROR"
        or element.get("HasErrors")
        or element.get("HasValidationErrors")
    )


def _invoice_outcome(element: dict[str, Any]) -> LedgerDocument | LedgerError:
    return classify(validation_messages(element)) if _failed(element) else payloads.invoice_document(element)


def _account_entry(row: dict[str, Any]) -> ChartEntry:
    return ChartEntry(
        id=str(row.get("Code") or ""),
        name=str(row.get("Name", "")),
        active=row.get("Status") == "ACTIVE",
        type=row.get("Type"),
        sales=row.get("Class") == "REVENUE",
        payments=row.get("Type") == "BANK" or bool(row.get("EnablePaymentsToAccount")),
    )


def _tax_rate_entry(row: dict[str, Any]) -> ChartEntry:
    return ChartEntry(
        id=str(row.get("TaxType", "")),
        name=str(row.get("Name", "")),
        active=row.get("Status") == "ACTIVE",
        type=row.get("ReportTaxType"),
        sales=bool(row.get("CanApplyToRevenue", True)),
    )


def _item_entry(row: dict[str, Any]) -> ChartEntry:
    # Xero items have no status: one that exists can be used, and ``IsSold`` says whether for sales.
    return ChartEntry(
        id=str(row.get("Code", "")),
        name=str(row.get("Name", "")),
        active=True,
        sales=bool(row.get("IsSold", True)),
    )


def part_key(idempotency_key: str, part: str) -> str:
    """Each write of a deposit carries its own Idempotency-Key, derived from the deposit's: 36
    characters whatever the key's length (Xero takes at most 128)."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, f"{idempotency_key}|deposit|{part}"))


class XeroLedger(RefundIsCreditNote):
    deposit_support: DepositSupport = "transfer"
    # Xero takes many invoices per request; 50 keeps a request well inside its size limits.
    batch_size = 50
    list_page_size = PAGE_SIZE
    payment_page_size = PAYMENT_PAGE_SIZE  # list_ledger_payments' pages (the port's most)

    def __init__(self, http: LedgerHttp) -> None:
        self.http = http

    def create_invoices(
        self, items: Sequence[tuple[InvoiceDraft, str]]
    ) -> list[LedgerDocument | LedgerError]:
        """One ``PUT /Invoices`` with ``summarizeErrors=false``: each element answers for itself.
        A draft Xero cannot take (no account code) fails alone, before the request."""
        outcomes: list[LedgerDocument | LedgerError | None] = []
        bodies: list[dict[str, Any]] = []
        for draft, _ in items:
            try:
                bodies.append(payloads.invoice_body(draft))
                outcomes.append(None)
            except LedgerError as error:
                outcomes.append(error)
        if bodies:
            key = str(uuid.uuid5(uuid.NAMESPACE_OID, "|".join(key for _, key in items)))
            response = self.http.request(
                "PUT",
                "Invoices",
                params=WRITE_PARAMS,
                payload={"Invoices": bodies},
                headers={"Idempotency-Key": key},
            )
            elements = response.get("Invoices") or []
            if len(elements) != len(bodies):
                raise LedgerUnavailable(f"Xero answered {len(elements)} invoices for {len(bodies)} sent")
            # Xero answers elements in the order sent; the numbers confirm it before any is trusted.
            for body, element in zip(bodies, elements, strict=True):
                if element.get("InvoiceNumber") not in {None, body.get("InvoiceNumber")}:
                    raise LedgerUnavailable("Xero answered invoices in another order than sent")
            answers = iter(elements)
            outcomes = [outcome or _invoice_outcome(next(answers)) for outcome in outcomes]
        return [outcome for outcome in outcomes if outcome is not None]

    def _write(
        self, method: str, path: str, collection: str, body: dict[str, Any], key: str
    ) -> dict[str, Any]:
        response = self.http.request(
            method, path, params=WRITE_PARAMS, payload={collection: [body]}, headers={"Idempotency-Key": key}
        )
        (element,) = response[collection]
        if _failed(element):
            raise classify(validation_messages(element))
        result: dict[str, Any] = element
        return result

    def _get(self, path: str, collection: str, params: dict[str, str] | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.http.request("GET", path, params=params).get(collection) or []
        return found

    def list_documents(
        self, kind: ListedKind, since: datetime, until: datetime | None = None
    ) -> Iterator[LedgerDocument]:
        """``If-Modified-Since`` (Xero's only bound: the upper one is checked here) and ``page=``
        pages of 100 until a short page; sales documents only (``where Type``). Refunds are credit
        notes in Xero, listed under ``credit_note``."""
        if kind == "refund":
            return
        collection, where = LISTED[kind]
        parse = {
            "Invoices": payloads.invoice_document,
            "CreditNotes": payloads.credit_note_document,
            "Payments": payloads.payment_document,
        }[collection]
        page = 1
        headers = {"If-Modified-Since": since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")}
        while True:
            params = {"page": str(page), "pageSize": str(self.list_page_size)}
            if where:
                params["where"] = where
            rows: list[dict[str, Any]] = (
                self.http.request("GET", collection, params=params, headers=headers).get(collection) or []
            )
            for row in rows:
                tax = row.get("TotalTax")
                document = replace(
                    parse(row),
                    tax=as_decimal(tax) if tax is not None else None,
                    updated_at=payloads.moment(row.get("UpdatedDateUTC")),
                )
                if in_window(document, since, until):
                    yield document
            if len(rows) < self.list_page_size:
                return
            page += 1

    def chart(self) -> Chart:
        """Xero does not page Accounts, TaxRates or Items: one GET each returns every row,
        archived accounts and deleted tax rates included. Accounts without a code (some bank
        accounts) cannot be named by a mapping and are left out."""
        accounts = [_account_entry(row) for row in self._get("Accounts", "Accounts")]
        return Chart(
            items=tuple(_item_entry(row) for row in self._get("Items", "Items")),
            tax_codes=tuple(_tax_rate_entry(row) for row in self._get("TaxRates", "TaxRates")),
            accounts=tuple(account for account in accounts if account.id),
        )

    def find_customer(self, name: str) -> LedgerContact | None:
        found = self._get("Contacts", "Contacts", {"where": f"Name=={payloads.quote(name)}"})
        return payloads.contact(found[0]) if found else None

    def create_customer(
        self,
        name: str,
        email: str | None,
        currency: str,  # noqa: ARG002 - a Xero DefaultCurrency needs multicurrency; invoices carry theirs
        reference: str,
        idempotency_key: str,
    ) -> LedgerContact:
        (contact,) = payloads.contact_payload(name, email, reference)["Contacts"]
        return payloads.contact(self._write("PUT", "Contacts", "Contacts", contact, idempotency_key))

    def find_invoice(self, number: str) -> LedgerDocument | None:
        found = self._get("Invoices", "Invoices", {"where": f"InvoiceNumber=={payloads.quote(number)}"})
        live = [payloads.invoice_document(i) for i in found if i.get("Status") != "DELETED"]
        return live[0] if live else None

    def get_invoice(self, ledger_id: str) -> LedgerDocument:
        (invoice,) = self._get(f"Invoices/{ledger_id}", "Invoices")
        return payloads.invoice_document(invoice)

    def create_invoice(self, draft: InvoiceDraft, idempotency_key: str) -> LedgerDocument:
        body = payloads.invoice_body(draft)
        return payloads.invoice_document(self._write("PUT", "Invoices", "Invoices", body, idempotency_key))

    def update_invoice(
        self, ledger_id: str, version: str | None, draft: InvoiceDraft, idempotency_key: str
    ) -> LedgerDocument:
        self._check_version(ledger_id, version)
        body = {**payloads.invoice_body(draft), "InvoiceID": ledger_id}
        return payloads.invoice_document(
            self._write("POST", f"Invoices/{ledger_id}", "Invoices", body, idempotency_key)
        )

    def void_invoice(self, ledger_id: str, version: str | None, idempotency_key: str) -> LedgerDocument:
        self._check_version(ledger_id, version)
        body = {"InvoiceID": ledger_id, "Status": "VOIDED"}
        return payloads.invoice_document(
            self._write("POST", f"Invoices/{ledger_id}", "Invoices", body, idempotency_key)
        )

    def _check_version(self, ledger_id: str, version: str | None) -> None:
        current = self.get_invoice(ledger_id)
        if version is not None and current.version != version:
            raise StaleObject(f"Xero invoice {ledger_id} changed since {version} (now {current.version})")

    def get_payment(self, ledger_id: str) -> LedgerDocument:
        """A payment into an invoice or a payout of a credit note: GET /Payments/{id} serves both."""
        (payment,) = self._get(f"Payments/{ledger_id}", "Payments")
        return payloads.payment_document(payment)

    def get_ledger_payment(self, ledger_id: str) -> LedgerPayment:
        (payment,) = self._get(f"Payments/{ledger_id}", "Payments")
        return payloads.ledger_payment(payment)

    def list_ledger_payments(self, since: datetime, page: int) -> tuple[list[LedgerPayment], bool]:
        """``GET /Payments`` with ``If-Modified-Since`` (to the second, as ``list_documents`` sends
        it), ``order=UpdatedDateUTC ASC`` and ``page`` (100 a page, Xero's most). The header is
        whole seconds and "since" may be strict, so it goes one second early and the payments
        older than ``since`` are dropped here; a full page means another may follow."""
        rows, more = self._payment_page(since, page)
        return [payment for _, payment in rows], more

    def list_ledger_payment_elements(self, since: datetime, page: int) -> tuple[list[dict[str, Any]], bool]:
        """The same page as ``list_ledger_payments``, as the Payment elements Xero returned: the
        payments poll sends each along, so the worker needs no second GET for it."""
        rows, more = self._payment_page(since, page)
        return [element for element, _ in rows], more

    def _payment_page(
        self, since: datetime, page: int
    ) -> tuple[list[tuple[dict[str, Any], LedgerPayment]], bool]:
        if page < 1:
            raise ValueError("pages are numbered from 1")
        early = since.astimezone(UTC) - timedelta(seconds=1)
        headers = {"If-Modified-Since": early.strftime("%Y-%m-%dT%H:%M:%S")}
        params = {"page": str(page), "pageSize": str(self.payment_page_size), "order": "UpdatedDateUTC ASC"}
        rows: list[dict[str, Any]] = (
            self.http.request("GET", "Payments", params=params, headers=headers).get("Payments") or []
        )
        floor = since.replace(microsecond=0)  # "since" to the second, as the ledgers keep time
        parsed = [(row, payloads.ledger_payment(row)) for row in rows]
        newer = [(row, p) for row, p in parsed if p.updated_at is None or p.updated_at >= floor]
        return newer, len(rows) >= self.payment_page_size

    def create_payment(self, draft: PaymentDraft, idempotency_key: str) -> LedgerDocument:
        body = payloads.payment_body(draft)
        return payloads.payment_document(self._write("PUT", "Payments", "Payments", body, idempotency_key))

    def find_credit_note(self, number: str) -> LedgerDocument | None:
        found = self._get(
            "CreditNotes", "CreditNotes", {"where": f"CreditNoteNumber=={payloads.quote(number)}"}
        )
        live = [payloads.credit_note_document(c) for c in found if c.get("Status") != "DELETED"]
        return live[0] if live else None

    def get_credit_note(self, ledger_id: str) -> LedgerDocument:
        (note,) = self._get(f"CreditNotes/{ledger_id}", "CreditNotes")
        return payloads.credit_note_document(note)

    def create_credit_note(self, draft: InvoiceDraft, idempotency_key: str) -> LedgerDocument:
        body = payloads.credit_note_body(draft)
        return payloads.credit_note_document(
            self._write("PUT", "CreditNotes", "CreditNotes", body, idempotency_key)
        )

    def apply_credit_note(
        self,
        credit_note_id: str,
        invoice_id: str,
        customer_id: str,  # noqa: ARG002 - a Xero allocation knows the contact from the credit note
        amount: Decimal,
        idempotency_key: str,
    ) -> None:
        body = payloads.allocation_body(invoice_id, amount, date.today())
        self._write("PUT", f"CreditNotes/{credit_note_id}/Allocations", "Allocations", body, idempotency_key)

    def void_credit_note(self, ledger_id: str, version: str | None, idempotency_key: str) -> LedgerDocument:
        current = self.get_credit_note(ledger_id)
        if version is not None and current.version != version:
            raise StaleObject(f"Xero credit note {ledger_id} changed since {version} (now {current.version})")
        body = {"CreditNoteID": ledger_id, "Status": "VOIDED"}
        return payloads.credit_note_document(
            self._write("POST", f"CreditNotes/{ledger_id}", "CreditNotes", body, idempotency_key)
        )

    def pay_out_credit(self, draft: PaymentDraft, idempotency_key: str) -> LedgerDocument:
        """``PUT /Payments`` naming the credit note; Xero refuses more than its RemainingCredit
        ("Payment amount exceeds the amount outstanding on this document"), which comes back as
        ``LedgerValidation`` in those words."""
        (body,) = payloads.credit_payout_payload(draft)["Payments"]
        return payloads.payment_document(self._write("PUT", "Payments", "Payments", body, idempotency_key))

    # ---------------------------------------------------------------------------------------------
    # Payouts as bank deposits: spend / receive money in the clearing account, then one transfer

    def find_deposit(self, draft: DepositDraft) -> LedgerDocument | None:
        """The transfer whose ``Reference`` is this payout's (marker and number): ``GET
        /BankTransfers?where=Reference==…`` (deleted ones left out), the reference compared again
        here, exactly (whatever Xero's filter does with case: Stripe ids are case-sensitive). A
        transfer a person made (the number without the marker), or another payout's, is never
        adopted. The reference names the payout, so no date filter is needed."""
        found = self._transfer(draft)
        return payloads.transfer_document(found, draft.currency) if found is not None else None

    def create_deposit(self, draft: DepositDraft, idempotency_key: str) -> LedgerDocument:
        """Up to three writes, each with its own key (``part_key``) and looked for by its
        ``Reference`` first, so a retry after any of them landed books nothing twice: the SPEND of
        the fees and other money out of clearing, the RECEIVE of money into it no payment accounts
        for, then the transfer of ``draft.total`` to the bank account. Payment and refund lines
        need no write: push booked them into and out of the clearing account. Every body is built
        (so checked) before the first request. The transfer goes last, so a transfer that
        ``find_deposit`` finds (and push adopts) means the bank transactions are there too."""
        spend, receive, transfer = payloads.deposit_bodies(draft)
        for body in (spend, receive):
            if body is not None and self._bank_transaction(body) is None:
                key = part_key(idempotency_key, str(body["Type"]).lower())
                self._write("PUT", "BankTransactions", "BankTransactions", body, key)
        existing = self._transfer(draft)
        if existing is not None:
            return payloads.transfer_document(existing, draft.currency)
        # createBankTransfer takes no summarizeErrors (xero_accounting.yaml): an invalid transfer
        # is a 400 ValidationException, which the HTTP plumbing maps.
        response = self.http.request(
            "PUT",
            "BankTransfers",
            payload={"BankTransfers": [transfer]},
            headers={"Idempotency-Key": part_key(idempotency_key, "transfer")},
        )
        (element,) = response["BankTransfers"]
        if validation_messages(element):
            raise classify(validation_messages(element))
        return payloads.transfer_document(element, draft.currency)

    def get_deposit(self, ledger_id: str) -> LedgerDocument:
        """``GET /BankTransfers/{id}``, and the currency of the account it leaves (a transfer
        carries none): two requests."""
        (transfer,) = self._get(f"BankTransfers/{ledger_id}", "BankTransfers")
        source = transfer.get("FromBankAccount") or {}
        (account,) = self._get(f"Accounts/{source['AccountID']}", "Accounts")
        return payloads.transfer_document(transfer, str(account.get("CurrencyCode", "")))

    def _transfer(self, draft: DepositDraft) -> dict[str, Any] | None:
        reference = payloads.deposit_reference(draft)
        rows = self._get(
            "BankTransfers", "BankTransfers", {"where": f"Reference=={payloads.quote(reference)}"}
        )
        live = [r for r in rows if r.get("Reference") == reference and r.get("Status") != "DELETED"]
        return live[0] if live else None

    def _bank_transaction(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The spend or receive money already booked with this body's Reference and Type in the
        clearing account; one that does not hold the same total is an error, never adopted."""
        reference, kind = str(body["Reference"]), str(body["Type"])
        where = f"Reference=={payloads.quote(reference)} AND Type=={payloads.quote(kind)}"
        rows = self._get("BankTransactions", "BankTransactions", {"where": where})
        live = [
            r
            for r in rows
            if r.get("Reference") == reference
            and r.get("Type") == kind
            and r.get("Status") == "AUTHORISED"
            and (r.get("BankAccount") or {}).get("Code") == body["BankAccount"]["Code"]
        ]
        if not live:
            return None
        expected = sum((as_decimal(item["UnitAmount"]) for item in body["LineItems"]), Decimal(0))
        found = live[0]
        if as_decimal(found.get("Total")) != expected:
            raise LedgerValidation(
                f"Xero already holds {kind} money {found.get('BankTransactionID')} for {reference!r} "
                f"of {found.get('Total')}, not {expected}: a person must check it before the deposit "
                "is booked"
            )
        return found
