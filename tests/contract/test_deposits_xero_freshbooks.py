"""Payouts as bank deposits, Xero and FreshBooks, each adapter against its sandbox over HTTP
(design two-way 3.5.2 and 3.9, with the design's worked example: payout po_1QxYz of USD 202.43).

The adapters are the contract suite's own (``conftest._ledger``: built as production builds
them); each case here also holds its sandbox, whose books the tests read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync.errors import LedgerUnavailable, LedgerValidation, NotFound
from invoice_sync.ledgers.freshbooks.adapter import FreshBooksLedger
from invoice_sync.ledgers.port import (
    DepositDraft,
    DepositLine,
    InvoiceDraft,
    LineDraft,
    PaymentDraft,
    marker,
)
from invoice_sync.ledgers.xero import payloads as xero_payloads
from invoice_sync.ledgers.xero.adapter import XeroLedger
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox
from tests.contract.conftest import CREDENTIALS, _ledger, _vault

XERO_TENANT = "0d7f6e4c-1a2b-4c3d-8e9f-0000000000d1"
CLEARING = "091"  # the sandbox's "Stripe Clearing" bank account
BANK = "090"  # its "Business Bank Account"
FEES = "404"  # its "Bank Fees" expense account
ADJUSTMENTS = "400"
UNMATCHED = "260"


def _invoice(customer_id: str, number: str, amount: str) -> InvoiceDraft:
    return InvoiceDraft(
        source_id=f"in_{number}",
        customer_id=customer_id,
        number=number,
        issued_on=date(2026, 11, 20),
        due_on=None,
        currency="USD",
        lines=(
            LineDraft(
                item_id="",
                description="Consulting",
                quantity=1,
                amount=Decimal(amount),
                tax_code="NONE",
                account="200",
            ),
        ),
        discount=Decimal(0),
        tax=Decimal(0),
        total=Decimal(amount),
        memo=None,
        private_note=marker("stripe", f"in_{number}"),
    )


def _deposit(po_id: str, contact_id: str | None, lines: tuple[DepositLine, ...]) -> DepositDraft:
    return DepositDraft(
        source_id=po_id,
        number="PO-3FA2C91B0D" if po_id == "po_1QxYz" else f"PO-{po_id[-10:].upper()}",
        arrival_on=date(2026, 12, 4),
        currency="USD",
        bank_account=BANK,
        clearing_account=CLEARING,
        contact_id=contact_id,
        lines=lines,
        total=sum((line.amount for line in lines), Decimal(0)),
        private_note=marker("stripe", po_id),
    )


@dataclass
class XeroBooks:
    sandbox: XeroSandbox
    ledger: XeroLedger
    contact_id: str  # the "Stripe" supplier

    def balance(self, code: str) -> Decimal:
        return self.sandbox.balances(XERO_TENANT)[code]

    def rows(self, collection: str, **match: str) -> list[dict[str, Any]]:
        rows = self.sandbox.documents(XERO_TENANT, collection)
        return [row for row in rows if all(row.get(k) == v for k, v in match.items())]

    def worked_example(self) -> DepositDraft:
        """The design's payout: INV-1001 (150.00) and INV-1002 (80.00) paid into clearing by push,
        20.00 refunded out of it (a credit note paid out), fees of 7.57: a deposit of 202.43."""
        customer = self.ledger.create_customer("Deposit Customer", None, "USD", "cus_dep", "cust-dep").id
        payments: list[DepositLine] = []
        for number, amount in (("INV-1001", "150.00"), ("INV-1002", "80.00")):
            invoice = self.ledger.create_invoice(_invoice(customer, number, amount), f"inv-{number}")
            paid = self.ledger.create_payment(
                PaymentDraft(
                    source_id=f"ch_{number}",
                    customer_id=customer,
                    invoice_id=invoice.id,
                    amount=Decimal(amount),
                    currency="USD",
                    paid_on=date(2026, 12, 1),
                    private_note=marker("stripe", f"ch_{number}"),
                    account=CLEARING,
                ),
                f"pay-{number}",
            )
            payments.append(DepositLine("payment", Decimal(amount), f"{number}", ledger_id=paid.id))
        note = self.ledger.create_credit_note(_invoice(customer, "CN-77", "20.00"), "cn-77")
        payout = self.ledger.pay_out_credit(
            PaymentDraft(
                source_id="re_1",
                customer_id=customer,
                invoice_id=note.id,
                amount=Decimal("20.00"),
                currency="USD",
                paid_on=date(2026, 12, 2),
                private_note=marker("stripe", "re_1"),
                account=CLEARING,
            ),
            "refund-77",
        )
        lines = (
            *payments,
            DepositLine("refund", Decimal("-20.00"), "Refund of ch_a", ledger_id=payout.id),
            DepositLine("fee", Decimal("-7.57"), "Stripe fees, payout po_1QxYz", account=FEES),
        )
        return _deposit("po_1QxYz", self.contact_id, lines)


@pytest.fixture
def xero() -> Iterator[XeroBooks]:
    sandbox = XeroSandbox()
    url = sandbox.start()
    sandbox.seed_organisation(XERO_TENANT, **CREDENTIALS)
    ledger = _ledger("xero", url, XERO_TENANT, _vault())
    assert isinstance(ledger, XeroLedger)
    yield XeroBooks(sandbox, ledger, sandbox.seed_supplier(XERO_TENANT, "Stripe"))
    sandbox.stop()


def test_xero_deposit_books_the_fees_and_one_transfer_and_clearing_returns_to_zero(xero: XeroBooks) -> None:
    """Given the worked example's payments (230.00 in) and refund (20.00 out) in the clearing
    account, when the payout is booked, then Xero holds one SPEND of 7.57 to the fee account with
    the Stripe contact and one transfer of 202.43 to the bank account, both carrying the marker
    and the deposit number, and clearing is back to zero (230.00 - 20.00 - 7.57 - 202.43)."""
    draft = xero.worked_example()
    assert xero.balance(CLEARING) == Decimal("210.00")

    deposit = xero.ledger.create_deposit(draft, "deposit-key-1")

    assert (deposit.total, deposit.number, deposit.currency) == (Decimal("202.43"), draft.number, "USD")
    assert xero.balance(CLEARING) == Decimal("0.00")
    assert xero.balance(BANK) == Decimal("202.43")
    (spend,) = xero.rows("BankTransactions", Type="SPEND")
    assert spend["Total"] == Decimal("7.57")
    assert spend["BankAccount"]["Code"] == CLEARING
    assert spend["Contact"]["ContactID"] == xero.contact_id
    assert [(i["AccountCode"], i["LineAmount"]) for i in spend["LineItems"]] == [(FEES, Decimal("7.57"))]
    assert spend["Reference"] == f"{draft.private_note} {draft.number} spend"
    assert xero.rows("BankTransactions", Type="RECEIVE") == []
    (transfer,) = xero.rows("BankTransfers")
    assert transfer["BankTransferID"] == deposit.id
    assert (transfer["FromBankAccount"]["Code"], transfer["ToBankAccount"]["Code"]) == (CLEARING, BANK)
    assert transfer["Reference"] == f"{draft.private_note} {draft.number}"
    # And reconciliation reads the same deposit back by id
    read = xero.ledger.get_deposit(deposit.id)
    assert (read.id, read.total, read.number, read.currency, read.voided) == (
        deposit.id,
        Decimal("202.43"),
        draft.number,
        "USD",
        False,
    )


def test_xero_retry_with_the_same_key_books_nothing_twice(xero: XeroBooks) -> None:
    """Given a payout already booked, when create_deposit runs again (same key, and again after
    Xero forgot the keys), then the same transfer comes back and Xero holds one SPEND and one
    transfer: the lookups by reference stand guard beyond Xero's idempotency window."""
    draft = xero.worked_example()
    first = xero.ledger.create_deposit(draft, "deposit-key-2")
    again = xero.ledger.create_deposit(draft, "deposit-key-2")
    xero.sandbox.forget_idempotency_keys(XERO_TENANT)
    after_window = xero.ledger.create_deposit(draft, "deposit-key-2")
    assert again.id == after_window.id == first.id
    assert len(xero.rows("BankTransactions", Type="SPEND")) == 1
    assert len(xero.rows("BankTransfers")) == 1
    assert xero.balance(CLEARING) == Decimal("0.00")


def test_xero_retry_after_only_the_spend_landed_resumes_with_the_transfer(xero: XeroBooks) -> None:
    """Given the SPEND committed but every answer to it was lost (the worker gave up, nothing
    transferred yet), when the deposit is created again with the same key, then the SPEND is found
    by its reference and not booked again, the transfer is booked, and clearing is back to zero."""
    draft = xero.worked_example()
    xero.sandbox.lose_responses(XERO_TENANT, 3)  # the SPEND and the client's two retries of it
    with pytest.raises(LedgerUnavailable):
        xero.ledger.create_deposit(draft, "deposit-key-3")
    assert len(xero.rows("BankTransactions", Type="SPEND")) == 1
    assert xero.rows("BankTransfers") == []
    assert xero.balance(CLEARING) == Decimal("202.43")

    deposit = xero.ledger.create_deposit(draft, "deposit-key-3")

    assert len(xero.rows("BankTransactions", Type="SPEND")) == 1
    (transfer,) = xero.rows("BankTransfers")
    assert transfer["BankTransferID"] == deposit.id
    assert xero.balance(CLEARING) == Decimal("0.00")


def test_xero_find_deposit_adopts_only_a_transfer_with_the_marker(xero: XeroBooks) -> None:
    """Given a transfer a person made for the payout (its number as the reference, no marker) and
    invoice-sync's transfer of another payout, then find_deposit finds nothing for this payout;
    once it is booked, find_deposit returns invoice-sync's transfer and no other."""
    draft = xero.worked_example()
    by_hand = {
        "FromBankAccount": {"Code": CLEARING},
        "ToBankAccount": {"Code": BANK},
        "Amount": Decimal("202.43"),
        "Date": "2026-12-04",
        "Reference": draft.number,
    }
    xero.ledger.http.request("PUT", "BankTransfers", payload={"BankTransfers": [by_hand]})
    other = _deposit(
        "po_2Other0001",
        xero.contact_id,
        (DepositLine("unmatched", Decimal("5.00"), "ch_x", account=UNMATCHED),),
    )
    xero.ledger.create_deposit(other, "deposit-other")
    assert xero.ledger.find_deposit(draft) is None

    booked = xero.ledger.create_deposit(draft, "deposit-key-4")

    found = xero.ledger.find_deposit(draft)
    assert found is not None
    assert (found.id, found.total, found.number) == (booked.id, Decimal("202.43"), draft.number)
    assert found.private_note == xero_payloads.deposit_reference(draft)


def test_xero_adjustments_and_unmatched_money_go_through_spend_and_receive(xero: XeroBooks) -> None:
    """Given a payout with fees, a dispute (money out) and a charge no payment accounts for (money
    in), then the SPEND carries the fee and the dispute, the RECEIVE the unmatched charge, the
    transfer the payout's total, and clearing still returns to zero."""
    draft = xero.worked_example()
    lines = (
        *draft.lines,
        DepositLine("adjustment", Decimal("-15.00"), "Dispute du_1", account=ADJUSTMENTS),
        DepositLine("unmatched", Decimal("12.00"), "Charge ch_z without its payment", account=UNMATCHED),
    )
    draft = replace(draft, lines=lines, total=Decimal("199.43"))

    deposit = xero.ledger.create_deposit(draft, "deposit-key-5")

    (spend,) = xero.rows("BankTransactions", Type="SPEND")
    (receive,) = xero.rows("BankTransactions", Type="RECEIVE")
    assert [(i["AccountCode"], i["LineAmount"]) for i in spend["LineItems"]] == [
        (FEES, Decimal("7.57")),
        (ADJUSTMENTS, Decimal("15.00")),
    ]
    assert [(i["AccountCode"], i["LineAmount"]) for i in receive["LineItems"]] == [
        (UNMATCHED, Decimal("12.00"))
    ]
    assert deposit.total == Decimal("199.43")
    assert xero.balance(CLEARING) == Decimal("0.00")


def test_xero_deposit_without_the_stripe_contact_writes_nothing(xero: XeroBooks) -> None:
    """Given a payout with fees and no contact, then create_deposit refuses it before any write
    (Xero's spend money needs a contact), naming the setting to fill."""
    draft = replace(xero.worked_example(), contact_id=None)
    with pytest.raises(LedgerValidation, match="payout_contact_id"):
        xero.ledger.create_deposit(draft, "deposit-key-6")
    assert xero.rows("BankTransactions", Type="SPEND") == []
    assert xero.rows("BankTransfers") == []


# ------------------------------------------------------------------------------------------------
# FreshBooks: the payout's fees as one expense (design 3.9)

FRESHBOOKS_ACCOUNT = "dEpOs1"


@dataclass
class FreshBooksBooks:
    sandbox: FreshBooksSandbox
    ledger: FreshBooksLedger
    fee_category: str  # the seeded "Merchant Fees" category id (payout_fee_account)

    def expenses(self) -> list[dict[str, Any]]:
        return self.sandbox.documents(FRESHBOOKS_ACCOUNT, "expenses")

    def worked_example(self, po_id: str = "po_1QxYz") -> DepositDraft:
        """The worked example as FreshBooks gets it: no bank or clearing account, no contact; the
        payment and refund lines name FreshBooks payments push booked (not read here)."""
        lines = (
            DepositLine("payment", Decimal("150.00"), "INV-1001", ledger_id="100101"),
            DepositLine("payment", Decimal("80.00"), "INV-1002", ledger_id="100102"),
            DepositLine("refund", Decimal("-20.00"), "Refund of ch_a", ledger_id="100103"),
            DepositLine("fee", Decimal("-7.57"), "Stripe fees, payout po_1QxYz", account=self.fee_category),
        )
        return replace(
            _deposit(po_id, None, lines), bank_account=None, clearing_account=None, contact_id=None
        )


@pytest.fixture
def freshbooks() -> Iterator[FreshBooksBooks]:
    sandbox = FreshBooksSandbox()
    url = sandbox.start()
    sandbox.seed_account(FRESHBOOKS_ACCOUNT, business_id=900010, **CREDENTIALS)
    ledger = _ledger("freshbooks", url, FRESHBOOKS_ACCOUNT, _vault())
    assert isinstance(ledger, FreshBooksLedger)
    yield FreshBooksBooks(sandbox, ledger, str(sandbox.category_id(FRESHBOOKS_ACCOUNT, "Merchant Fees")))
    sandbox.stop()


def test_freshbooks_deposit_books_one_expense_of_the_fees(freshbooks: FreshBooksBooks) -> None:
    """Given the worked example, when the payout is booked, then FreshBooks holds one expense of
    7.57 USD (the fees, as a positive amount) in the fee category, from vendor Stripe, dated the
    arrival day, its notes the marker, "fees" and the deposit number; nothing else is written, and
    the expense reads back by id as the deposit."""
    draft = freshbooks.worked_example()

    deposit = freshbooks.ledger.create_deposit(draft, "fb-deposit-1")

    (expense,) = freshbooks.expenses()
    assert expense["amount"] == {"amount": Decimal("7.57"), "code": "USD"}
    assert (expense["categoryid"], expense["vendor"], expense["date"]) == (
        int(freshbooks.fee_category),
        "Stripe",
        "2026-12-04",
    )
    assert expense["notes"] == f"{draft.private_note} fees {draft.number}"
    assert (deposit.id, deposit.total, deposit.number, deposit.currency) == (
        str(expense["id"]),
        Decimal("7.57"),
        draft.number,
        "USD",
    )
    assert freshbooks.sandbox.documents(FRESHBOOKS_ACCOUNT, "payments") == []
    read = freshbooks.ledger.get_deposit(deposit.id)
    assert (read.id, read.total, read.number, read.voided) == (
        deposit.id,
        Decimal("7.57"),
        draft.number,
        False,
    )


def test_freshbooks_expense_is_found_again_and_a_retry_books_nothing_twice(
    freshbooks: FreshBooksBooks,
) -> None:
    """Given the fee expense booked, then find_deposit finds it by its notes; a retry with the same
    key, and one after the adapter forgot its keys (a cold start), answer the same expense and
    FreshBooks still holds one."""
    draft = freshbooks.worked_example()
    assert freshbooks.ledger.find_deposit(draft) is None
    first = freshbooks.ledger.create_deposit(draft, "fb-deposit-2")
    found = freshbooks.ledger.find_deposit(draft)
    again = freshbooks.ledger.create_deposit(draft, "fb-deposit-2")
    freshbooks.ledger.forget_replays()
    cold = freshbooks.ledger.create_deposit(draft, "fb-deposit-2")
    assert found is not None
    assert found.id == again.id == cold.id == first.id
    assert len(freshbooks.expenses()) == 1


def test_freshbooks_lost_answer_is_adopted_by_its_notes(freshbooks: FreshBooksBooks) -> None:
    """Given FreshBooks committed the expense but its answer was lost (FreshBooks has no
    idempotency keys, so the POST is not retried blind), when the deposit is created again, then
    the expense is found by its notes and adopted: one expense."""
    draft = freshbooks.worked_example()
    freshbooks.sandbox.lose_responses(FRESHBOOKS_ACCOUNT, 1)
    with pytest.raises(LedgerUnavailable):
        freshbooks.ledger.create_deposit(draft, "fb-deposit-3")
    assert len(freshbooks.expenses()) == 1
    deposit = freshbooks.ledger.create_deposit(draft, "fb-deposit-3")
    (expense,) = freshbooks.expenses()
    assert deposit.id == str(expense["id"])


def test_freshbooks_find_deposit_adopts_only_the_payouts_own_expense(freshbooks: FreshBooksBooks) -> None:
    """Given, on the arrival day, an expense a person made for Stripe fees (no marker) and the fee
    expense of another payout, then find_deposit finds nothing for this payout."""
    draft = freshbooks.worked_example()
    person = {
        "amount": {"amount": "7.57", "code": "USD"},
        "categoryid": int(freshbooks.fee_category),
        "date": "2026-12-04",
        "vendor": "Stripe",
        "notes": f"Stripe fees {draft.number}",
        "staffid": 1,
    }
    freshbooks.ledger.client.write("POST", "expenses/expenses", "expense", person)
    freshbooks.ledger.create_deposit(freshbooks.worked_example("po_2Other0001"), "fb-other")
    assert freshbooks.ledger.find_deposit(draft) is None


def test_freshbooks_payout_without_fees_writes_nothing(freshbooks: FreshBooksBooks) -> None:
    """Given a payout with no fee line, then create_deposit and find_deposit answer the same
    deposit of 0 (its id the payout's own) without a write, so push's create-once needs no
    FreshBooks case."""
    draft = freshbooks.worked_example()
    draft = replace(draft, lines=draft.lines[:3], total=Decimal("210.00"))
    created = freshbooks.ledger.create_deposit(draft, "fb-deposit-5")
    found = freshbooks.ledger.find_deposit(draft)
    assert created == found
    assert (created.id, created.total, created.number) == ("po_1QxYz", Decimal(0), draft.number)
    assert freshbooks.expenses() == []
    assert freshbooks.ledger.get_deposit(created.id).total == Decimal(0)


def test_freshbooks_fee_category_that_is_not_one_is_refused(freshbooks: FreshBooksBooks) -> None:
    """Given a fee category FreshBooks does not have, then the expense is refused (422, category
    not found) as LedgerValidation and nothing is booked."""
    draft = freshbooks.worked_example()
    lines = (*draft.lines[:3], replace(draft.lines[3], account="999"))
    with pytest.raises(LedgerValidation, match="Category not found"):
        freshbooks.ledger.create_deposit(replace(draft, lines=lines), "fb-deposit-6")
    assert freshbooks.expenses() == []


def test_xero_spend_of_another_amount_under_the_payouts_reference_stops_the_deposit(xero: XeroBooks) -> None:
    """Given spend money already under this payout's reference but of another amount (someone
    changed it, or the payout's fees were read differently), then create_deposit refuses to adopt
    it or to book a second one: LedgerValidation, and no transfer is made."""
    draft = xero.worked_example()
    spend, _, _ = xero_payloads.deposit_bodies(draft)
    assert spend is not None
    other = {**spend, "LineItems": [{**spend["LineItems"][0], "UnitAmount": Decimal("5.00")}]}
    xero.ledger.http.request("PUT", "BankTransactions", payload={"BankTransactions": [other]})
    with pytest.raises(LedgerValidation, match="a person must check it"):
        xero.ledger.create_deposit(draft, "deposit-key-7")
    assert len(xero.rows("BankTransactions", Type="SPEND")) == 1
    assert xero.rows("BankTransfers") == []


def test_xero_get_deposit_of_an_unknown_transfer_is_not_found(xero: XeroBooks) -> None:
    with pytest.raises(NotFound):
        xero.ledger.get_deposit("00000000-0000-0000-0000-00000000dead")


def test_freshbooks_get_deposit_of_an_unknown_expense_is_not_found(freshbooks: FreshBooksBooks) -> None:
    for unknown in ("999999", "not-an-id"):
        with pytest.raises(NotFound):
            freshbooks.ledger.get_deposit(unknown)
