"""Payouts as bank deposits in QuickBooks Online (design two-way 3.5.2), over HTTP: the QBO adapter,
built as production builds it (``conftest._ledger``: the shared HTTP plumbing, QBO's error mapping,
its limits, a real OAuth refresh), against the QBO sandbox's Deposit entity.

The company holds what push books before a payout arrives: two invoices paid by two Payments left in
Undeposited Funds (no ``DepositToAccountRef``, as ``payment_payload`` sends them) and a RefundReceipt
paid out of Undeposited Funds. The payout is the design's worked example: 150.00 + 80.00 - 20.00
- 7.57 (Stripe fees, on the seeded Merchant fees account 92) = 202.43 into Checking (35).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest

from invoice_sync.errors import LedgerUnavailable, LedgerValidation, NotFound
from invoice_sync.ledgers.port import DepositDraft, DepositLine, InvoiceDraft, LineDraft, PaymentDraft, marker
from invoice_sync.ledgers.quickbooks.adapter import QuickBooksLedger
from invoice_sync.sync.keys import idempotency_key, request_key
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from tests.contract.conftest import CREDENTIALS, _ledger, _vault

REALM = "4620816365000000007"
CHECKING = "35"  # the seeded Bank account
UNDEPOSITED_FUNDS = "4"
MERCHANT_FEES = "92"  # the seeded Expense account
STRIPE_UNMATCHED = "93"  # the seeded Other Income account
ARRIVAL = date(2026, 12, 4)


@dataclass
class Books:
    sandbox: QuickBooksSandbox
    ledger: QuickBooksLedger
    customer_id: str
    payments: tuple[str, str]  # QBO Payment ids of INV-1001 (150.00) and INV-1002 (80.00)
    refund_id: str  # QBO RefundReceipt id (20.00 paid out of Undeposited Funds)

    def invoice(self, number: str, amount: str) -> str:
        draft = InvoiceDraft(
            source_id=f"in_{number}",
            customer_id=self.customer_id,
            number=number,
            issued_on=date(2026, 11, 20),
            due_on=date(2026, 12, 20),
            currency="USD",
            lines=(LineDraft("1", "Consulting", 1, Decimal(amount), "NON"),),
            discount=Decimal(0),
            tax=Decimal(0),
            total=Decimal(amount),
            memo=None,
            private_note=marker("stripe", f"in_{number}"),
        )
        return self.ledger.create_invoice(draft, f"invoice-{number}").id

    def pay(self, invoice_id: str, amount: str, source_id: str, account: str | None = None) -> str:
        """A payment as push books it: into Undeposited Funds unless ``account`` says otherwise."""
        draft = PaymentDraft(
            source_id=source_id,
            customer_id=self.customer_id,
            invoice_id=invoice_id,
            amount=Decimal(amount),
            currency="USD",
            paid_on=date(2026, 12, 1),
            private_note=marker("stripe", source_id),
            account=account,
        )
        payment = self.ledger.create_payment(draft, f"payment-{source_id}")
        if account is not None:  # payment_payload sends no account: a person moves the money there
            moved = self.ledger.client.request(
                "POST",
                "payment",
                payload={
                    "Id": payment.id,
                    "SyncToken": payment.version,
                    "sparse": True,
                    "DepositToAccountRef": {"value": account},
                },
            )
            return str(moved["Payment"]["Id"])
        return payment.id

    def payout(
        self, source_id: str = "po_1QxYz", number: str = "PO-3FA2C91B0D", *lines: DepositLine
    ) -> DepositDraft:
        lines = lines or (
            DepositLine(
                "payment", Decimal("150.00"), "INV-1001", ledger_id=self.payments[0], source_id="txn_a"
            ),
            DepositLine(
                "payment", Decimal("80.00"), "INV-1002", ledger_id=self.payments[1], source_id="txn_b"
            ),
            DepositLine(
                "refund", Decimal("-20.00"), "refund of ch_a", ledger_id=self.refund_id, source_id="txn_c"
            ),
            DepositLine("fee", Decimal("-7.57"), f"Stripe fees, payout {source_id}", account=MERCHANT_FEES),
        )
        return DepositDraft(
            source_id=source_id,
            number=number,
            arrival_on=ARRIVAL,
            currency="USD",
            bank_account=CHECKING,
            clearing_account=None,
            contact_id=None,
            lines=lines,
            total=sum((line.amount for line in lines), Decimal(0)),
            private_note=marker("stripe", source_id),
        )

    def deposits(self) -> list[dict[str, object]]:
        return self.sandbox.documents(REALM, "Deposit")


def key(draft: DepositDraft) -> str:
    """The requestid push sends: the recorded intent's key refined by the request (design 3.5.2 9)."""
    return request_key(idempotency_key("contract", "payout", draft.source_id, "create"), draft)


@pytest.fixture
def books() -> Iterator[Books]:
    sandbox = QuickBooksSandbox()
    url = sandbox.start()
    sandbox.seed_company(REALM, **CREDENTIALS)
    ledger = _ledger("quickbooks", url, REALM, _vault())
    assert isinstance(ledger, QuickBooksLedger)
    customer = ledger.create_customer("Acme Ltd", None, "USD", "cus_acme", "customer-acme")
    partial = Books(sandbox, ledger, customer.id, ("", ""), "")
    first = partial.pay(partial.invoice("INV-1001", "150.00"), "150.00", "inpay_a")
    second = partial.pay(partial.invoice("INV-1002", "80.00"), "80.00", "inpay_b")
    refund = InvoiceDraft(
        source_id="ch_a:refunded:1",
        customer_id=customer.id,
        number="RF-1001",
        issued_on=date(2026, 12, 2),
        due_on=None,
        currency="USD",
        lines=(LineDraft("1", "Refund of INV-1001", 1, Decimal("20.00"), "NON"),),
        discount=Decimal(0),
        tax=Decimal(0),
        total=Decimal("20.00"),
        memo=None,
        private_note=marker("stripe", "re_a"),
    )
    refund_id = ledger.create_refund(refund, UNDEPOSITED_FUNDS, "refund-re_a").id
    yield Books(sandbox, ledger, customer.id, (first, second), refund_id)
    sandbox.stop()


def test_a_payout_books_one_deposit_equal_to_the_bank_line(books: Books) -> None:
    """Given two payments and a refund receipt in Undeposited Funds, when the worked example's payout
    is booked, QBO holds one Deposit into Checking on the arrival date whose computed TotalAmt is
    202.43, the bank line to the cent; create_deposit and get_deposit both read it back with its
    number, marker and the two payments it moved."""
    draft = books.payout()
    created = books.ledger.create_deposit(draft, key(draft))
    assert created.total == Decimal("202.43") == draft.total
    assert (created.number, created.private_note) == ("PO-3FA2C91B0D", "invoice-sync: stripe po_1QxYz")
    assert created.linked_payment_ids == books.payments
    (stored,) = books.deposits()
    assert stored["TotalAmt"] == Decimal("202.43")
    assert stored["TxnDate"] == "2026-12-04"
    assert stored["DepositToAccountRef"] == {"value": CHECKING, "name": "Checking"}
    read = books.ledger.get_deposit(created.id)
    assert (read.id, read.version, read.total, read.balance) == (created.id, "0", Decimal("202.43"), 0)
    assert read.private_note == draft.private_note


def test_find_deposit_adopts_ours_and_never_a_persons(books: Books) -> None:
    """Given a deposit a person made in QBO on the arrival date (no marker, though its note names the
    payout), find_deposit finds nothing to adopt; once the payout is booked it finds that deposit
    again, and only it."""
    person = books.ledger.client.request(
        "POST",
        "deposit",
        payload={
            "DepositToAccountRef": {"value": CHECKING},
            "TxnDate": ARRIVAL.isoformat(),
            "PrivateNote": "Stripe payout po_1QxYz",
            "Line": [
                {
                    "Amount": Decimal("202.43"),
                    "DetailType": "DepositLineDetail",
                    "DepositLineDetail": {"AccountRef": {"value": STRIPE_UNMATCHED}},
                }
            ],
        },
    )["Deposit"]
    draft = books.payout()
    assert books.ledger.find_deposit(draft) is None
    created = books.ledger.create_deposit(draft, key(draft))
    found = books.ledger.find_deposit(draft)
    assert found is not None
    assert found.id == created.id != person["Id"]
    assert found.total == Decimal("202.43")


def test_the_same_payment_cannot_go_in_a_second_deposit(books: Books) -> None:
    """Given a deposit holding the first payment, another payout's deposit linking that payment again
    is refused by QBO (6540, deposited transaction): LedgerValidation with the code, the ledger's
    words naming the deposit that holds it, and nothing booked."""
    books.ledger.create_deposit(books.payout(), key(books.payout()))
    again = books.payout(
        "po_2Again",
        "PO-2AGAIN",
        DepositLine("payment", Decimal("150.00"), "INV-1001", ledger_id=books.payments[0]),
    )
    with pytest.raises(LedgerValidation) as refused:
        books.ledger.create_deposit(again, key(again))
    assert refused.value.code == "6540"
    assert "Deposited Transaction cannot be changed" in str(refused.value)
    assert len(books.deposits()) == 1


def test_a_retry_with_the_same_request_id_returns_the_same_deposit(books: Books) -> None:
    """Given a deposit booked once, the same request sent again (the same requestid) answers the
    same deposit and books no second one; and a create whose answer is lost after QBO committed it
    either gets the original back (the plumbing retries with the same requestid) or reports QBO
    unavailable, after which find_deposit adopts the one deposit QBO holds."""
    draft = books.payout()
    first = books.ledger.create_deposit(draft, key(draft))
    second = books.ledger.create_deposit(draft, key(draft))
    assert second.id == first.id
    assert len(books.deposits()) == 1

    other = books.payout(
        "po_3Lost",
        "PO-3LOST",
        DepositLine(
            "unmatched", Decimal("12.00"), "charge ch_9 without its payment", account=STRIPE_UNMATCHED
        ),
    )
    books.sandbox.lose_responses(REALM, 1)
    try:
        created: str | None = books.ledger.create_deposit(other, key(other)).id
    except LedgerUnavailable:
        created = None
    found = books.ledger.find_deposit(other)
    assert found is not None
    assert created in {None, found.id}
    assert len(books.deposits()) == 2


def test_a_deposited_payment_cannot_be_deleted_until_its_deposit_is(books: Books) -> None:
    """Given a payment in a deposit, deleting it in QBO is refused (6540) and it stays; once the
    deposit is deleted (deposit?operation=delete), the payment can be deleted."""
    deposit = books.ledger.create_deposit(books.payout(), key(books.payout()))
    payment = books.ledger.get_payment(books.payments[0])
    delete = {"Id": payment.id, "SyncToken": payment.version}
    with pytest.raises(LedgerValidation) as refused:
        books.ledger.client.request("POST", "payment", params={"operation": "delete"}, payload=delete)
    assert refused.value.code == "6540"
    assert books.ledger.get_payment(payment.id).total == Decimal("150.00")

    books.ledger.client.request(
        "POST",
        "deposit",
        params={"operation": "delete"},
        payload={"Id": deposit.id, "SyncToken": deposit.version},
    )
    with pytest.raises(NotFound):
        books.ledger.get_deposit(deposit.id)
    books.ledger.client.request("POST", "payment", params={"operation": "delete"}, payload=delete)
    with pytest.raises(NotFound):
        books.ledger.get_payment(payment.id)


def test_money_outside_undeposited_funds_cannot_be_deposited(books: Books) -> None:
    """Given a payment received straight into Checking (not Undeposited Funds), a deposit linking it
    is refused by QBO as an invalid reference (2500): LedgerValidation, nothing booked."""
    direct = books.pay(books.invoice("INV-1003", "40.00"), "40.00", "inpay_c", account=CHECKING)
    draft = books.payout(
        "po_4Direct", "PO-4DIRECT", DepositLine("payment", Decimal("40.00"), "INV-1003", ledger_id=direct)
    )
    with pytest.raises(LedgerValidation) as refused:
        books.ledger.create_deposit(draft, key(draft))
    assert refused.value.code == "2500"
    assert books.deposits() == []


def test_get_deposit_of_an_unknown_id_is_not_found(books: Books) -> None:
    """A deposit QBO does not hold (deleted by a person, or never made) reads as NotFound (610)."""
    with pytest.raises(NotFound):
        books.ledger.get_deposit("999999")
