"""``LedgerPort`` for QuickBooks Online."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from invoice_sync.errors import LedgerError, LedgerUnavailable, Unsupported
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
    as_decimal,
    marked,
)
from invoice_sync.ledgers.quickbooks import payloads
from invoice_sync.ledgers.quickbooks.client import BATCH_WINDOW, QuickBooksClient, fault_error

# Accounts money can be received into or paid out from (QBO's DepositToAccountRef on payments and
# refund receipts takes these types).
PAYMENT_ACCOUNT_TYPES = {"Bank", "Other Current Asset", "Credit Card"}
LISTED_ENTITIES: dict[str, str] = {
    "invoice": "Invoice",
    "credit_note": "CreditMemo",
    "refund": "RefundReceipt",
    "payment": "Payment",
}


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _item_entry(row: dict[str, Any]) -> ChartEntry:
    return ChartEntry(
        id=str(row["Id"]),
        name=str(row.get("Name", "")),
        active=row.get("Active", True) is True,
        type=row.get("Type"),
        sales=row.get("Type") != "Category",
    )


def _account_entry(row: dict[str, Any]) -> ChartEntry:
    kind = row.get("AccountType")
    return ChartEntry(
        id=str(row["Id"]),
        name=str(row.get("FullyQualifiedName") or row.get("Name", "")),
        active=row.get("Active", True) is True,
        type=kind,
        sales=row.get("Classification") == "Revenue" or kind in {"Income", "Other Income"},
        payments=kind in PAYMENT_ACCOUNT_TYPES,
    )


def _tax_code_entry(row: dict[str, Any]) -> ChartEntry:
    return ChartEntry(
        id=str(row["Id"]), name=str(row.get("Name", "")), active=row.get("Active", True) is True
    )


class QuickBooksLedger:
    deposit_support: DepositSupport = "deposit"
    # Intuit recommends at most 30 operations per batch request (python-quickbooks splits at 30).
    batch_size = 30
    # QBO answers at most 1,000 rows per query; the chart is read page by page.
    chart_page_size = 1000
    list_page_size = 1000  # reconciliation's listing pages (QBO's most per query)
    payment_page_size = PAYMENT_PAGE_SIZE  # list_ledger_payments' pages (the port's most)
    deposit_page_size = 1000  # find_deposit reads a day's deposits in pages of QBO's most

    def __init__(self, client: QuickBooksClient) -> None:
        self.client = client

    def _all(self, entity: str) -> list[dict[str, Any]]:
        """Every row of a name list, inactive ones too (QBO leaves those out unless asked)."""
        rows: list[dict[str, Any]] = []
        size = self.chart_page_size
        while True:
            statement = (
                f"select * from {entity} where Active in (true, false) "  # noqa: S608 - no user input
                f"ORDERBY Id STARTPOSITION {len(rows) + 1} MAXRESULTS {size}"
            )
            page = self.client.query(statement).get(entity) or []
            rows.extend(page)
            if len(page) < size:
                return rows

    def list_documents(
        self, kind: ListedKind, since: datetime, until: datetime | None = None
    ) -> Iterator[LedgerDocument]:
        """``MetaData.LastUpdatedTime`` between the bounds, ``ORDERBY Id`` and ``STARTPOSITION`` /
        ``MAXRESULTS`` pages of 1,000 (QBO's largest), one query per page."""
        entity = LISTED_ENTITIES[kind]
        bounds = f"MetaData.LastUpdatedTime >= '{_stamp(since)}'"
        if until is not None:
            bounds += f" and MetaData.LastUpdatedTime <= '{_stamp(until)}'"
        size = self.list_page_size
        start = 1
        while True:
            statement = (
                f"select * from {entity} where {bounds} "  # noqa: S608 - no user input
                f"ORDERBY Id STARTPOSITION {start} MAXRESULTS {size}"
            )
            page = self.client.query(statement).get(entity) or []
            for row in page:
                tax = (row.get("TxnTaxDetail") or {}).get("TotalTax")
                yield replace(
                    payloads.document(row),
                    tax=as_decimal(tax) if tax is not None else None,
                    updated_at=payloads.moment((row.get("MetaData") or {}).get("LastUpdatedTime")),
                )
            if len(page) < size:
                return
            start += size

    def chart(self) -> Chart:
        return Chart(
            items=tuple(_item_entry(row) for row in self._all("Item")),
            tax_codes=tuple(_tax_code_entry(row) for row in self._all("TaxCode")),
            accounts=tuple(_account_entry(row) for row in self._all("Account")),
        )

    def create_invoices(
        self, items: Sequence[tuple[InvoiceDraft, str]]
    ) -> list[LedgerDocument | LedgerError]:
        """One ``/batch`` request. Its ``requestid`` (36 characters at most for a batch) derives
        from the items' own keys, so a retried batch is replayed, not executed twice."""
        if not items:
            return []
        request_id = str(uuid.uuid5(uuid.NAMESPACE_OID, "|".join(key for _, key in items)))
        body = {
            "BatchItemRequest": [
                {"bId": str(index), "operation": "create", "Invoice": payloads.invoice_payload(draft)}
                for index, (draft, _) in enumerate(items)
            ]
        }
        response = self.client.request(
            "POST", "batch", params={"requestid": request_id}, payload=body, window=BATCH_WINDOW
        )
        answers = {str(item.get("bId")): item for item in response.get("BatchItemResponse") or ()}
        outcomes: list[LedgerDocument | LedgerError] = []
        for index in range(len(items)):
            answer = answers.get(str(index))
            if answer is None:
                outcomes.append(LedgerUnavailable(f"QBO batch answered nothing for item {index}"))
            elif "Invoice" in answer:
                outcomes.append(payloads.document(answer["Invoice"]))
            else:
                fault = answer.get("Fault") or {}
                # A per-item SystemFault is QBO failing, not the document: retry it, never park it.
                status = 500 if fault.get("type") == "SystemFault" else 400
                outcomes.append(fault_error(status, {"Fault": fault}))
        return outcomes

    def find_customer(self, name: str) -> LedgerContact | None:
        # quote() escapes the value the way QBO's query language requires.
        rows = self.client.query(f"select * from Customer where DisplayName = {payloads.quote(name)}")  # noqa: S608
        found = rows.get("Customer") or []
        return payloads.contact(found[0]) if found else None

    def create_customer(
        self, name: str, email: str | None, currency: str, reference: str, idempotency_key: str
    ) -> LedgerContact:
        response = self.client.request(
            "POST",
            "customer",
            params={"requestid": idempotency_key},
            payload=payloads.customer_payload(name, email, currency, reference),
        )
        return payloads.contact(response["Customer"])

    def find_invoice(self, number: str) -> LedgerDocument | None:
        rows = self.client.query(f"select * from Invoice where DocNumber = {payloads.quote(number)}")  # noqa: S608
        found = rows.get("Invoice") or []
        return payloads.document(found[0]) if found else None

    def get_invoice(self, ledger_id: str) -> LedgerDocument:
        return payloads.document(self.client.request("GET", f"invoice/{ledger_id}")["Invoice"])

    def create_invoice(self, draft: InvoiceDraft, idempotency_key: str) -> LedgerDocument:
        response = self.client.request(
            "POST", "invoice", params={"requestid": idempotency_key}, payload=payloads.invoice_payload(draft)
        )
        return payloads.document(response["Invoice"])

    def update_invoice(
        self, ledger_id: str, version: str | None, draft: InvoiceDraft, idempotency_key: str
    ) -> LedgerDocument:
        # Sparse, so what QBO owns (LinkedTxn to payments, e-mail status) stays; the Line array is
        # still replaced whole, so lines removed at the source disappear in the ledger too.
        payload = {
            **payloads.invoice_payload(draft),
            "Id": ledger_id,
            "SyncToken": version or "0",
            "sparse": True,
        }
        response = self.client.request(
            "POST", "invoice", params={"requestid": idempotency_key}, payload=payload
        )
        return payloads.document(response["Invoice"])

    def void_invoice(self, ledger_id: str, version: str | None, idempotency_key: str) -> LedgerDocument:
        response = self.client.request(
            "POST",
            "invoice",
            params={"operation": "void", "requestid": idempotency_key},
            payload={"Id": ledger_id, "SyncToken": version or "0"},
        )
        return payloads.document(response["Invoice"])

    def get_payment(self, ledger_id: str) -> LedgerDocument:
        return payloads.document(self.client.request("GET", f"payment/{ledger_id}")["Payment"])

    def get_ledger_payment(self, ledger_id: str) -> LedgerPayment:
        return payloads.ledger_payment(self.client.request("GET", f"payment/{ledger_id}")["Payment"])

    def list_ledger_payments(self, since: datetime, page: int) -> tuple[list[LedgerPayment], bool]:
        """``MetaData.LastUpdatedTime >= since`` ordered by that time, page ``page`` of 100. One row
        more than the page is asked for, so the answer knows whether another page follows without
        reading an empty one."""
        if page < 1:
            raise ValueError("pages are numbered from 1")
        size = self.payment_page_size
        statement = (
            f"select * from Payment where MetaData.LastUpdatedTime >= '{_stamp(since)}' "  # noqa: S608 - no user input
            f"ORDERBY MetaData.LastUpdatedTime STARTPOSITION {(page - 1) * size + 1} MAXRESULTS {size + 1}"
        )
        rows = self.client.query(statement).get("Payment") or []
        return [payloads.ledger_payment(row) for row in rows[:size]], len(rows) > size

    def create_payment(self, draft: PaymentDraft, idempotency_key: str) -> LedgerDocument:
        response = self.client.request(
            "POST", "payment", params={"requestid": idempotency_key}, payload=payloads.payment_payload(draft)
        )
        return payloads.document(response["Payment"])

    def find_credit_note(self, number: str) -> LedgerDocument | None:
        rows = self.client.query(f"select * from CreditMemo where DocNumber = {payloads.quote(number)}")  # noqa: S608
        found = rows.get("CreditMemo") or []
        return payloads.document(found[0]) if found else None

    def get_credit_note(self, ledger_id: str) -> LedgerDocument:
        return payloads.document(self.client.request("GET", f"creditmemo/{ledger_id}")["CreditMemo"])

    def create_credit_note(self, draft: InvoiceDraft, idempotency_key: str) -> LedgerDocument:
        response = self.client.request(
            "POST",
            "creditmemo",
            params={"requestid": idempotency_key},
            payload=payloads.credit_memo_payload(draft),
        )
        return payloads.document(response["CreditMemo"])

    def apply_credit_note(
        self, credit_note_id: str, invoice_id: str, customer_id: str, amount: Decimal, idempotency_key: str
    ) -> None:
        payload = payloads.credit_application_payload(
            customer_id,
            invoice_id,
            credit_note_id,
            amount,
            f"invoice-sync: applies credit memo {credit_note_id}",
        )
        self.client.request("POST", "payment", params={"requestid": idempotency_key}, payload=payload)

    def void_credit_note(self, ledger_id: str, version: str | None, idempotency_key: str) -> LedgerDocument:
        response = self.client.request(
            "POST",
            "creditmemo",
            params={"operation": "void", "requestid": idempotency_key},
            payload={"Id": ledger_id, "SyncToken": version or "0"},
        )
        return payloads.document(response["CreditMemo"])

    def find_refund(self, number: str) -> LedgerDocument | None:
        rows = self.client.query(f"select * from RefundReceipt where DocNumber = {payloads.quote(number)}")  # noqa: S608
        found = rows.get("RefundReceipt") or []
        return payloads.document(found[0]) if found else None

    def get_refund(self, ledger_id: str) -> LedgerDocument:
        return payloads.document(self.client.request("GET", f"refundreceipt/{ledger_id}")["RefundReceipt"])

    def create_refund(
        self, draft: InvoiceDraft, paid_from: str | None, idempotency_key: str
    ) -> LedgerDocument:
        # The payload is built first so a missing account is refused before any request.
        payload = payloads.refund_receipt_payload(draft, paid_from)
        response = self.client.request(
            "POST", "refundreceipt", params={"requestid": idempotency_key}, payload=payload
        )
        return payloads.document(response["RefundReceipt"])

    def pay_out_credit(self, draft: PaymentDraft, idempotency_key: str) -> LedgerDocument:  # noqa: ARG002
        # QBO's API has no call that pays a credit memo out (a RefundReceipt books its own lines and
        # cannot draw on a memo's credit), so nothing is sent: the record is parked for a person.
        source = f"account {draft.account}" if draft.account else "the bank account the money left"
        customer = f"customer {draft.customer_id}" if draft.customer_id else "the credit memo's customer"
        raise Unsupported(
            f"QBO's API cannot pay out credit memo {draft.invoice_id}: pay {draft.amount} "
            f"{draft.currency} out by hand in QuickBooks. Write a cheque (or expense) to {customer} "
            f"from {source}, then open Receive payment for that customer and tick both the credit memo "
            "and the cheque, so the cheque uses up the credit"
        )

    # --- payouts as bank deposits (design two-way 3.5.2) ------------------------------------------

    def find_deposit(self, draft: DepositDraft) -> LedgerDocument | None:
        """The deposits QBO holds on the payout's arrival date, page by page, and of them only one
        whose ``PrivateNote`` carries the draft's marker (and whose ``DocNumber``, where QBO kept
        one, is the draft's number): a deposit a person made that day is never adopted. DocNumber
        is not queried, as whether QBO filters Deposit on it is unconfirmed (design 9.4)."""
        wanted = marked(draft.private_note)
        if wanted is None:
            raise ValueError(f"deposit {draft.number}: its private note carries no marker to find it by")
        size = self.deposit_page_size
        start = 1
        while True:
            statement = (
                f"select * from Deposit where TxnDate = '{draft.arrival_on.isoformat()}' "  # noqa: S608 - a date
                f"ORDERBY Id STARTPOSITION {start} MAXRESULTS {size}"
            )
            page = self.client.query(statement).get("Deposit") or []
            for row in page:
                number = row.get("DocNumber")
                if marked(row.get("PrivateNote")) == wanted and number in (None, "", draft.number):
                    return payloads.deposit_document(row)
            if len(page) < size:
                return None
            start += size

    def create_deposit(self, draft: DepositDraft, idempotency_key: str) -> LedgerDocument:
        """One ``POST deposit``; ``requestid`` is the key the caller derived (``request_key``), so a
        retry of the same request is replayed by QBO, not booked twice. A payment already in
        another deposit is refused by QBO (6540) and raised as ``LedgerValidation`` with its code."""
        # The payload is built first so a draft QBO would refuse is refused before any request.
        payload = payloads.deposit_payload(draft)
        response = self.client.request(
            "POST", "deposit", params={"requestid": idempotency_key}, payload=payload
        )
        return payloads.deposit_document(response["Deposit"])

    def get_deposit(self, ledger_id: str) -> LedgerDocument:
        return payloads.deposit_document(self.client.request("GET", f"deposit/{ledger_id}")["Deposit"])
