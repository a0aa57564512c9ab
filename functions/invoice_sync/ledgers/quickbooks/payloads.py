"""QBO v3 payloads from drafts, and QBO objects back to ``LedgerDocument``. Pure functions.

Amounts go out as JSON numbers with exactly the currency's decimals (see ``client.dumps``);
never through float.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from invoice_sync.errors import LedgerValidation
from invoice_sync.ledgers.port import (
    InvoiceDraft,
    LedgerContact,
    LedgerDocument,
    LedgerPayment,
    PaymentApplication,
    PaymentDraft,
    as_decimal,
)

DOC_NUMBER_MAX = 21  # QBO's limit on DocNumber and PaymentRefNum
DISPLAY_NAME_MAX = 500
UNIT_PRICE_PLACES = 7  # QBO keeps unit prices to seven decimals


def customer_payload(name: str, email: str | None, currency: str, reference: str) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "DisplayName": name[:DISPLAY_NAME_MAX],
        "CurrencyRef": {"value": currency},
        "Notes": reference,
    }
    if email:
        payload["PrimaryEmailAddr"] = {"Address": email}
    return payload


def invoice_payload(draft: InvoiceDraft) -> dict[str, Any]:
    payload = _sales_form(draft)
    if draft.due_on:
        payload["DueDate"] = draft.due_on.isoformat()
    return payload


def _sales_form(draft: InvoiceDraft) -> dict[str, Any]:
    """What every QBO sales form (Invoice, CreditMemo, RefundReceipt) takes from a draft: customer,
    lines, discount, tax override, currency, number and notes."""
    lines: list[dict[str, Any]] = []
    for index, line in enumerate(draft.lines, start=1):
        quantity, unit_price = line.priced(UNIT_PRICE_PLACES)
        lines.append(
            {
                "LineNum": index,
                "Amount": line.amount,
                "Description": line.description[:4000],
                "DetailType": "SalesItemLineDetail",
                "SalesItemLineDetail": {
                    "ItemRef": {"value": line.item_id},
                    "Qty": quantity,
                    "UnitPrice": unit_price,
                    "TaxCodeRef": {"value": line.tax_code},
                },
            }
        )
    if draft.discount:
        lines.append(
            {
                "Amount": draft.discount,
                "DetailType": "DiscountLineDetail",
                "DiscountLineDetail": {"PercentBased": False},
            }
        )
    payload: dict[str, Any] = {
        "CustomerRef": {"value": draft.customer_id},
        "TxnDate": draft.issued_on.isoformat(),
        "CurrencyRef": {"value": draft.currency},
        "Line": lines,
        # The source computed the tax; QBO would recompute it its own way (and a cent apart),
        # so the source figure is sent as the override.
        "TxnTaxDetail": {"TotalTax": draft.tax},
        "PrivateNote": draft.private_note,
    }
    if draft.number:
        payload["DocNumber"] = draft.number
    if draft.memo:
        payload["CustomerMemo"] = {"value": draft.memo[:1000]}
    return payload


def credit_memo_payload(draft: InvoiceDraft) -> dict[str, Any]:
    """A CreditMemo has an invoice's shape, without a due date."""
    return _sales_form(draft)


def refund_receipt_payload(draft: InvoiceDraft, paid_from: str | None) -> dict[str, Any]:
    """A RefundReceipt: a credit memo's shape plus the account the money is paid out of.

    QBO requires ``DepositToAccountRef`` on a refund receipt, so a connection without a refund
    account is refused here, with what to configure, rather than by QBO with a bare 2020 fault.
    """
    if not paid_from:
        raise LedgerValidation(
            "A QBO refund receipt needs the account the refund is paid from: set the connection's "
            "refund-from account to a QBO Bank, Credit Card or Other Current Asset account id, then "
            "re-drive the refund"
        )
    return {**_sales_form(draft), "DepositToAccountRef": {"value": paid_from}}


def credit_application_payload(
    customer_id: str, invoice_id: str, credit_memo_id: str, amount: Decimal, note: str
) -> dict[str, Any]:
    """Applies a credit memo to an invoice the way QBO does it: a payment of zero whose credit-memo
    line funds its invoice line."""
    return {
        "CustomerRef": {"value": customer_id},
        "TotalAmt": Decimal(0),
        "PrivateNote": note,
        "Line": [
            {"Amount": amount, "LinkedTxn": [{"TxnId": invoice_id, "TxnType": "Invoice"}]},
            {"Amount": amount, "LinkedTxn": [{"TxnId": credit_memo_id, "TxnType": "CreditMemo"}]},
        ],
    }


def payment_payload(draft: PaymentDraft) -> dict[str, Any]:
    return {
        "CustomerRef": {"value": draft.customer_id},
        "TotalAmt": draft.amount,
        "TxnDate": draft.paid_on.isoformat(),
        "CurrencyRef": {"value": draft.currency},
        "PaymentRefNum": draft.source_id[-DOC_NUMBER_MAX:],
        "PrivateNote": draft.private_note,
        "Line": [{"Amount": draft.amount, "LinkedTxn": [{"TxnId": draft.invoice_id, "TxnType": "Invoice"}]}],
    }


def document(obj: dict[str, Any]) -> LedgerDocument:
    """An Invoice, CreditMemo, RefundReceipt or Payment object as QBO returns it."""
    total = as_decimal(obj.get("TotalAmt"))
    return LedgerDocument(
        id=str(obj["Id"]),
        version=str(obj["SyncToken"]) if obj.get("SyncToken") is not None else None,
        number=obj.get("DocNumber") or obj.get("PaymentRefNum"),
        total=total,
        # Invoices: what is still owed; credit memos: credit not yet applied; payments: unapplied;
        # refund receipts: 0, as QBO pays them out as they are created.
        balance=as_decimal(
            obj["RemainingCredit"]
            if "RemainingCredit" in obj
            else obj.get("Balance", obj.get("UnappliedAmt"))
        ),
        currency=(obj.get("CurrencyRef") or {}).get("value", "USD"),
        private_note=obj.get("PrivateNote"),
        voided="Voided" in (obj.get("PrivateNote") or "") and total == 0,
        linked_payment_ids=tuple(
            str(link["TxnId"]) for link in obj.get("LinkedTxn", ()) if link.get("TxnType") == "Payment"
        ),
    )


def moment(value: object) -> datetime | None:
    """A QBO timestamp (``MetaData.LastUpdatedTime``, ISO 8601 with an offset) in UTC; None when
    absent or unreadable."""
    try:
        return datetime.fromisoformat(str(value)).astimezone(UTC) if value else None
    except ValueError:
        return None


def _linked(line: dict[str, Any], kind: str) -> list[str]:
    return [str(link["TxnId"]) for link in line.get("LinkedTxn") or () if link.get("TxnType") == kind]


def ledger_payment(obj: dict[str, Any]) -> LedgerPayment:
    """A Payment object as QBO returns it, as money applied to invoices.

    Each line names what it pays in ``LinkedTxn`` (one invoice a line, several lines for a payment
    of several invoices). A line naming a CreditMemo moves credit, not money: a payment of zero
    whose lines pair invoices with credit memos is a credit application and applies no money. A
    payment of money that also draws on credit names the money's share only for one invoice (the
    invoice line less the credit); with several invoices QBO does not say which the credit went to,
    so such a payment yields no application and stays for a person to look at.
    """
    total = as_decimal(obj.get("TotalAmt"))
    lines = [line for line in obj.get("Line") or () if isinstance(line, dict)]
    credit = sum(
        (as_decimal(line.get("Amount")) for line in lines if _linked(line, "CreditMemo")), Decimal(0)
    )
    invoice_lines = [
        (invoice_id, as_decimal(line.get("Amount")))
        for line in lines
        for invoice_id in _linked(line, "Invoice")
    ]
    applications: tuple[PaymentApplication, ...] = ()
    if not credit:
        applications = tuple(PaymentApplication(invoice_id, amount) for invoice_id, amount in invoice_lines)
    elif total > 0 and len(invoice_lines) == 1:
        invoice_id, amount = invoice_lines[0]
        if amount - credit > 0:
            applications = (PaymentApplication(invoice_id, amount - credit),)
    note = obj.get("PrivateNote")
    method = obj.get("PaymentMethodRef") or {}
    deposit = obj.get("DepositToAccountRef") or {}
    return LedgerPayment(
        id=str(obj["Id"]),
        version=str(obj["SyncToken"]) if obj.get("SyncToken") is not None else None,
        currency=(obj.get("CurrencyRef") or {}).get("value", "USD"),
        total=total,
        paid_on=date.fromisoformat(str(obj["TxnDate"])[:10]),
        note=note,
        reference=obj.get("PaymentRefNum") or None,
        method=method.get("name") or method.get("value") or None,
        applications=applications,
        # QBO voids a payment by zeroing it and replacing its note (as ``document`` reads it).
        voided="Voided" in (note or "") and total == 0,
        updated_at=moment((obj.get("MetaData") or {}).get("LastUpdatedTime")),
        deposit_account=str(deposit["value"]) if deposit.get("value") is not None else None,
    )


def contact(obj: dict[str, Any]) -> LedgerContact:
    return LedgerContact(id=str(obj["Id"]), name=str(obj.get("DisplayName", "")), reference=obj.get("Notes"))


def quote(value: str) -> str:
    """A string literal for QBO's query language (single quotes, backslash-escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
