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

from invoice_sync.errors import LedgerUnavailable, LedgerValidation
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
