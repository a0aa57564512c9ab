"""Push reads the ledger invoice only when it must (issue 9, ledger efficiency): not after booking
a payment unless another payment of the same snapshot follows, and not at all when the invoice's
create or update has just said how it stands. Each read is a request out of the ledger's quota.

The world is test_push_echo's: invoice in_1 (USD 100.00) synced to ledger invoice L1."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, cast

from invoice_sync.ledgers.port import LedgerDocument
from invoice_sync.models.documents import Payment
from tests.unit.test_push_echo import FakeLedger, World, paid_so_far


class CountingLedger(FakeLedger):
    def __init__(self) -> None:
        super().__init__()
        self.invoice_reads = 0

    def get_invoice(self, ledger_id: str) -> LedgerDocument:
        self.invoice_reads += 1
        return super().get_invoice(ledger_id)


def world() -> World:
    built = World(payments_back=False)
    built.ledger = CountingLedger()
    built.push.ledger_for = lambda _: cast(Any, built.ledger)
    return built


def card(source_id: str, amount: int) -> Payment:
    return Payment(
        source_id=source_id,
        invoice_source_id="in_1",
        amount=amount,
        currency="USD",
        paid_on=date(2026, 12, 2),
    )


def test_one_payment_reads_the_invoice_once_before_and_never_after() -> None:
    """Given a paid snapshot of an invoice already in the ledger, when push books its payment, then
    it read the ledger invoice once (its balance and payments), not again after booking."""
    w = world()
    w.book(paid_so_far(10000))
    ledger = cast(CountingLedger, w.ledger)
    assert [d.amount for d in ledger.created] == [Decimal("100.00")]
    assert ledger.invoice_reads == 1


def test_a_second_payment_of_the_snapshot_reads_the_invoice_again() -> None:
    """Given two payments in one snapshot, when push books them, then it reads the invoice before
    each: the first changed the balance the second is checked against."""
    w = world()
    w.book(card("inpay_1", 4000), card("inpay_2", 6000))
    ledger = cast(CountingLedger, w.ledger)
    assert [d.amount for d in ledger.created] == [Decimal("40.00"), Decimal("60.00")]
    assert ledger.invoice_reads == 2


def test_the_invoice_push_has_just_written_is_not_read_back() -> None:
    """Given the ledger's answer to the invoice's create (how it stands), when its payment is
    booked with it, then the invoice is not read at all."""
    w = world()
    record = w.state.record("acme", "invoice", "in_1")
    created = FakeLedger().get_invoice("L1")
    invoice = w.invoice(paid_so_far(10000))
    w.push._payments(invoice, record, w.mappings, cast(Any, w.ledger), created)
    ledger = cast(CountingLedger, w.ledger)
    assert [d.amount for d in ledger.created] == [Decimal("100.00")]
    assert ledger.invoice_reads == 0
