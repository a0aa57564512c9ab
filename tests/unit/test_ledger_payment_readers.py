"""The pure payment readers: a ledger's payment object (as its API returns it) read as a
``LedgerPayment`` whose applications say which invoices got how much money."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from invoice_sync.ledgers.freshbooks import payloads as freshbooks
from invoice_sync.ledgers.port import PaymentApplication, marker
from invoice_sync.ledgers.quickbooks import payloads as quickbooks
from invoice_sync.ledgers.xero import payloads as xero

# --- QuickBooks Online ----------------------------------------------------------------------------


def _qbo_payment(**changes: Any) -> dict[str, Any]:
    payment: dict[str, Any] = {
        "Id": "190",
        "SyncToken": "2",
        "TotalAmt": Decimal("250.00"),
        "UnappliedAmt": Decimal(0),
        "TxnDate": "2026-11-20",
        "CurrencyRef": {"value": "USD", "name": "United States Dollar"},
        "PaymentRefNum": "1042",
        "PrivateNote": "cheque from Acme",
        "PaymentMethodRef": {"value": "2", "name": "Check"},
        "DepositToAccountRef": {"value": "35"},
        "MetaData": {
            "CreateTime": "2026-11-20T09:00:00-08:00",
            "LastUpdatedTime": "2026-11-20T09:30:05-08:00",
        },
        "Line": [
            {"Amount": Decimal("150.00"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]},
            {"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": "131", "TxnType": "Invoice"}]},
        ],
    }
    return payment | changes


def test_qbo_payment_of_several_invoices_applies_each_line() -> None:
    """Given a QBO payment of two invoices (one line each), then it reads with one application
    per invoice for that line's amount, and every other field from its QBO name."""
    payment = quickbooks.ledger_payment(_qbo_payment())
    assert payment.applications == (
        PaymentApplication("130", Decimal("150.00")),
        PaymentApplication("131", Decimal("100.00")),
    )
    assert payment.id == "190"
    assert payment.version == "2"
    assert payment.total == Decimal("250.00")
    assert payment.currency == "USD"
    assert payment.paid_on == date(2026, 11, 20)
    assert payment.note == "cheque from Acme"
    assert payment.reference == "1042"
    assert payment.method == "Check"
    assert payment.deposit_account == "35"
    assert payment.updated_at == datetime(2026, 11, 20, 17, 30, 5, tzinfo=UTC)
    assert payment.voided is False


def test_qbo_credit_application_applies_no_money() -> None:
    """Given the zero payment QBO records when a credit memo is applied to an invoice (its invoice
    line funded by a credit-memo line), then it applies no money to any invoice."""
    obj = _qbo_payment(
        TotalAmt=Decimal(0),
        Line=[
            {"Amount": Decimal("40.00"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]},
            {"Amount": Decimal("40.00"), "LinkedTxn": [{"TxnId": "77", "TxnType": "CreditMemo"}]},
        ],
    )
    payment = quickbooks.ledger_payment(obj)
    assert payment.applications == ()
    assert payment.total == 0
    assert payment.voided is False


def test_qbo_money_with_credit_on_one_invoice_applies_the_money_only() -> None:
    """Given a payment of 60 plus 40 of credit on one invoice of 100, then only the 60 of money is
    applied to that invoice (the credit is not money received)."""
    obj = _qbo_payment(
        TotalAmt=Decimal("60.00"),
        Line=[
            {"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]},
            {"Amount": Decimal("40.00"), "LinkedTxn": [{"TxnId": "77", "TxnType": "CreditMemo"}]},
        ],
    )
    assert quickbooks.ledger_payment(obj).applications == (PaymentApplication("130", Decimal("60.00")),)


def test_qbo_payment_without_deposit_account_and_ours_keeps_its_marker() -> None:
    """Given a payment invoice-sync booked (marker note, no DepositToAccountRef: Undeposited
    Funds), then the marker reads back as the note and the deposit account is None."""
    obj = _qbo_payment(PrivateNote=marker("stripe", "in_1"))
    del obj["DepositToAccountRef"]
    del obj["PaymentMethodRef"]
    payment = quickbooks.ledger_payment(obj)
    assert payment.note == marker("stripe", "in_1")
    assert payment.deposit_account is None
    assert payment.method is None


def test_qbo_voided_payment_reads_voided() -> None:
    """Given a payment QBO voided (zeroed, its note replaced by "Voided", its lines gone), then it
    reads voided and applies nothing."""
    payment = quickbooks.ledger_payment(_qbo_payment(TotalAmt=Decimal(0), PrivateNote="Voided", Line=[]))
    assert payment.voided is True
    assert payment.applications == ()


# --- Xero -----------------------------------------------------------------------------------------


def _xero_payment(**changes: Any) -> dict[str, Any]:
    payment: dict[str, Any] = {
        "PaymentID": "b26fd49a-cbae-470a-a8f8-bcbc119e0379",
        "Date": "/Date(1795132800000+0000)/",  # 2026-11-20
        "BankAmount": Decimal("180.00"),
        "Amount": Decimal("200.00"),
        "Reference": "bank feed 88",
        "CurrencyRate": Decimal("0.9"),
        "PaymentType": "ACCRECPAYMENT",
        "Status": "AUTHORISED",
        "UpdatedDateUTC": "/Date(1795167005000+0000)/",
        "Account": {"AccountID": "ac-1", "Code": "090", "Name": "Business Bank Account"},
        "Invoice": {"InvoiceID": "inv-1", "InvoiceNumber": "INV-1", "Type": "ACCREC", "CurrencyCode": "EUR"},
    }
    return payment | changes


def test_xero_received_payment_applies_the_invoice_amount() -> None:
    """Given an ACCRECPAYMENT, then it applies ``Amount`` (the invoice currency's figure, not the
    bank's) to its invoice, in the invoice's currency, dated and stamped from Xero's /Date()/."""
    payment = xero.ledger_payment(_xero_payment())
    assert payment.applications == (PaymentApplication("inv-1", Decimal("200.00")),)
    assert payment.total == Decimal("200.00")
    assert payment.currency == "EUR"
    assert payment.paid_on == date(2026, 11, 20)
    assert payment.updated_at == datetime.fromtimestamp(1795167005, UTC)
    assert payment.version == "/Date(1795167005000+0000)/"
    assert payment.note == payment.reference == "bank feed 88"
    assert payment.method == "Business Bank Account"
    assert payment.deposit_account == "090"
    assert payment.voided is False


def test_xero_other_payment_types_apply_nothing() -> None:
    """Given a refund out of a credit note (ARCREDITPAYMENT) and an overpayment allocation, then
    neither applies money to an invoice."""
    refund = _xero_payment(PaymentType="ARCREDITPAYMENT", Invoice=None, CreditNote={"CreditNoteID": "cn-1"})
    assert xero.ledger_payment(refund).applications == ()
    over = _xero_payment(PaymentType="AROVERPAYMENTPAYMENT")
    assert xero.ledger_payment(over).applications == ()


def test_xero_deleted_payment_reads_voided() -> None:
    """Given a payment someone deleted in Xero (Status DELETED), then it reads voided."""
    assert xero.ledger_payment(_xero_payment(Status="DELETED")).voided is True


# --- FreshBooks -----------------------------------------------------------------------------------


def _freshbooks_payment(**changes: Any) -> dict[str, Any]:
    payment: dict[str, Any] = {
        "id": 3301,
        "logid": 3301,
        "invoiceid": 2101,
        "clientid": 501,
        "amount": {"amount": "75.50", "code": "CAD"},
        "date": "2026-11-20",
        "type": "Check",
        "note": "cheque 551",
        "creditid": None,
        "from_credit": False,
        "vis_state": 0,
        "updated": "2026-11-20 09:30:05",
    }
    return payment | changes


def test_freshbooks_payment_applies_to_its_invoice() -> None:
    """Given a FreshBooks payment, then it applies its string amount (exactly) to its invoice, in
    its currency, stamped in Eastern time, with the adapter's version."""
    obj = _freshbooks_payment()
    payment = freshbooks.ledger_payment(obj)
    assert payment.applications == (PaymentApplication("2101", Decimal("75.50")),)
    assert payment.currency == "CAD"
    assert payment.paid_on == date(2026, 11, 20)
    assert payment.note == "cheque 551"
    assert payment.method == "Check"
    assert payment.reference == "Check cheque 551"
    assert payment.version == freshbooks.version(obj)
    assert payment.updated_at == datetime(2026, 11, 20, 14, 30, 5, tzinfo=UTC)
    assert payment.voided is False


def test_freshbooks_credit_payment_applies_no_money() -> None:
    """Given a payment drawn from a credit note (creditid / from_credit), then it applies no
    money: the credit was not money received."""
    credit = _freshbooks_payment(creditid=88, from_credit=True, type="Credit")
    assert freshbooks.ledger_payment(credit).applications == ()
    only_flag = _freshbooks_payment(from_credit=True)
    assert freshbooks.ledger_payment(only_flag).applications == ()


def test_freshbooks_deleted_payment_reads_voided() -> None:
    """Given a payment deleted in FreshBooks (vis_state 1), then it reads voided."""
    assert freshbooks.ledger_payment(_freshbooks_payment(vis_state=1)).voided is True
