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
    DepositDraft,
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
DESCRIPTION_MAX = 4000  # a Deposit line's Description (Intuit's Deposit entity reference)
# The deposit lines that move money already booked out of Undeposited Funds, and the QBO type each
# links (design two-way 2.2: "Any transaction that funds the Undeposited Funds account can be linked
# to a Deposit"; Payment and RefundReceipt are among the linkable types). Every other kind of line
# (fees, adjustments, unmatched money) is a direct DepositLineDetail line on its own account.
DEPOSIT_LINKED_TYPES = {"payment": "Payment", "refund": "RefundReceipt"}


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


def deposit_payload(draft: DepositDraft) -> dict[str, Any]:
    """A QBO Deposit of a Stripe payout into ``draft.bank_account``, one line per draft line.

    Facts (design two-way 2.2, from Intuit's Deposit entity reference
    https://developer.intuit.com/app/developer/qbo/docs/api/accounting/all-entities/deposit):

    * payment and refund lines link the QBO Payment / RefundReceipt whose money sits in Undeposited
      Funds: ``{"Amount", "LinkedTxn": [{"TxnId", "TxnType", "TxnLineId": "0"}]}`` (``TxnLineId`` is
      "Required for Deposit and Bill entities");
    * a refund receipt's line goes with a negative amount: the documented assumption until a real
      company says otherwise (design 9.2);
    * fee, adjustment and unmatched lines are direct ``DepositLineDetail`` lines on their account,
      signed (a negative Expense line for the fees: design 9.1), with a ``Description``;
    * ``TotalAmt`` is read-only (QBO sums the lines), so it is not sent; ``DocNumber`` (on every QBO
      Transaction, python-quickbooks' ``Deposit`` model included) carries ``draft.number``, at most
      21 characters, and ``PrivateNote`` the marker ``find_deposit`` adopts by.

    A draft QBO would refuse, or that would book the wrong money, is refused here before any
    request: no bank account, a number too long, a linked line without its document or with the
    wrong sign, a direct line without its account.
    """
    if not draft.bank_account:
        raise LedgerValidation(
            f"A QBO deposit needs the bank account the payout lands in: set the connection's payout "
            f"bank account to a QBO Bank or Other Current Asset account id, then re-drive payout "
            f"{draft.source_id}"
        )
    if len(draft.number) > DOC_NUMBER_MAX:
        raise LedgerValidation(
            f"deposit number {draft.number!r} is longer than QBO's {DOC_NUMBER_MAX} characters"
        )
    if not draft.lines:
        raise LedgerValidation(f"deposit {draft.number} has no lines: QBO needs at least one")
    lines: list[dict[str, Any]] = []
    for index, line in enumerate(draft.lines, start=1):
        where = f"deposit {draft.number} line {index} ({line.kind} {line.amount})"
        linked_type = DEPOSIT_LINKED_TYPES.get(line.kind)
        if linked_type is not None:
            if not line.ledger_id:
                raise LedgerValidation(f"{where} names no QBO {linked_type} to deposit")
            if (line.amount <= 0) if line.kind == "payment" else (line.amount >= 0):
                sign = "positive" if line.kind == "payment" else "negative"
                raise LedgerValidation(f"{where}: a {line.kind} line must be {sign}")
            lines.append(
                {
                    "Amount": line.amount,
                    "LinkedTxn": [{"TxnId": line.ledger_id, "TxnType": linked_type, "TxnLineId": "0"}],
                }
            )
            continue
        if not line.account:
            raise LedgerValidation(f"{where} names no QBO account to post to")
        lines.append(
            {
                "Amount": line.amount,
                "DetailType": "DepositLineDetail",
                "Description": line.description[:DESCRIPTION_MAX],
                "DepositLineDetail": {"AccountRef": {"value": line.account}},
            }
        )
    return {
        "DepositToAccountRef": {"value": draft.bank_account},
        "TxnDate": draft.arrival_on.isoformat(),
        "CurrencyRef": {"value": draft.currency},
        "DocNumber": draft.number,
        "PrivateNote": draft.private_note,
        "Line": lines,
    }


def deposit_document(obj: dict[str, Any]) -> LedgerDocument:
    """A Deposit object as QBO returns it: its total (QBO's sum of the lines), nothing left open on
    it, and the payments its lines moved out of Undeposited Funds."""
    return LedgerDocument(
        id=str(obj["Id"]),
        version=str(obj["SyncToken"]) if obj.get("SyncToken") is not None else None,
        number=obj.get("DocNumber") or None,
        total=as_decimal(obj.get("TotalAmt")),
        balance=Decimal(0),
        currency=(obj.get("CurrencyRef") or {}).get("value", "USD"),
        private_note=obj.get("PrivateNote"),
        linked_payment_ids=tuple(
            payment_id
            for line in obj.get("Line") or ()
            if isinstance(line, dict)
            for payment_id in _linked(line, "Payment")
        ),
    )


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
