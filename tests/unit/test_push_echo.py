"""Push's side of the two echo loops (design two-way 3.6), on fakes: money payments back told Stripe
about is never booked in the ledger again when Stripe's invoice.paid comes back (loop 2), and each
payment push books on a connection with payments back on is linked, so that its ledger webhook is
never sent back to Stripe even after someone edits its note (loop 1, rule 2).

The world: invoice in_1 (USD 100.00) synced to ledger invoice L1, 100.00 open there."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from invoice_sync.errors import TransientError
from invoice_sync.ledgers.port import LedgerDocument, PaymentDraft
from invoice_sync.models.documents import Customer, Invoice, InvoiceStatus, Payment
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.models.sync import LedgerPaid, SyncRecord, SyncStatus, utcnow
from invoice_sync.sync.push import PushService
from tests.unit.fake_state import FakeAlerts, FakeState

CONNECTION = "acme"


class RecordedPayment(Payment):
    """An InvoicePayment-shaped payment naming the Stripe payment record it is (the field the
    Stripe parser is to carry, ``payment.payment_record`` of an InvoicePayment)."""

    payment_record: str | None = None


class FakeLedger:
    def __init__(self) -> None:
        self.balance = Decimal("100.00")
        self.created: list[PaymentDraft] = []

    def get_invoice(self, ledger_id: str) -> LedgerDocument:
        return LedgerDocument(
            id=ledger_id,
            version="1",
            number="INV-1",
            total=Decimal("100.00"),
            balance=self.balance,
            currency="USD",
        )

    def get_payment(self, ledger_id: str) -> LedgerDocument:
        raise AssertionError("no payment of ours exists yet")

    def create_payment(self, draft: PaymentDraft, idempotency_key: str) -> LedgerDocument:
        self.created.append(draft)
        self.balance -= draft.amount
        return LedgerDocument(
            id=f"LP{len(self.created)}",
            version="0",
            number=None,
            total=draft.amount,
            balance=Decimal(0),
            currency="USD",
            private_note=draft.private_note,
        )


class World:
    def __init__(
        self, *, payments_back: bool = True, ledger_paid: dict[str, LedgerPaid] | None = None
    ) -> None:
        self.state = FakeState()
        self.ledger = FakeLedger()
        self.mappings = Mappings(
            connection=Connection(connection_id=CONNECTION, tenant_id="realm-1", payments_back=payments_back)
        )
        self.push = PushService(
            state=cast(Any, self.state),
            mappings=cast(Any, None),
            archive=cast(Any, None),
            alerts=FakeAlerts(),
            ledger_for=lambda _: cast(Any, self.ledger),
        )
        self.state.put(
            SyncRecord(
                connection_id=CONNECTION,
                kind="invoice",
                source_id="in_1",
                status=SyncStatus.SYNCED,
                ledger_id="L1",
                ledger_customer_id="C1",
                source_number="INV-1",
                ledger_paid=ledger_paid,
            )
        )

    @staticmethod
    def invoice(*payments: Payment) -> Invoice:
        """in_1 paid with these payments, as Stripe's snapshot says."""
        return Invoice(
            source_id="in_1",
            number="INV-1",
            currency="USD",
            customer=Customer(source_id="cus_1"),
            issued_on=date(2026, 12, 1),
            lines=(),
            subtotal=10000,
            total=10000,
            status=InvoiceStatus.PAID,
            payments=payments,
        )

    def book(self, *payments: Payment) -> None:
        """Push brings the invoice's payments in, as it does after the invoice itself."""
        invoice = self.invoice(*payments)
        # The invoice record as push read it at the start of its message (possibly before a reservation).
        record, _ = self.state.get(CONNECTION, "invoice", "in_1")
        assert record is not None
        self.push._payments(invoice, record, self.mappings, cast(Any, self.ledger))

    def payment(self, source_id: str) -> SyncRecord:
        return self.state.record(CONNECTION, "payment", source_id)


def paid_so_far(amount: int) -> Payment:
    """Stripe's invoice.paid in the webhook shape: the running amount_paid, as a cumulative payment."""
    return Payment(
        source_id=f"in_1:paid:{amount}",
        invoice_source_id="in_1",
        amount=amount,
        currency="USD",
        paid_on=date(2026, 12, 2),
        cumulative=True,
    )


def entry(amount: int, state: str = "done", age: timedelta = timedelta(0)) -> LedgerPaid:
    return LedgerPaid(amount=amount, state=state, at=utcnow() - age)  # type: ignore[arg-type]


def test_stripe_paid_total_of_a_payment_from_the_ledger_books_nothing_then_only_the_card_payment() -> None:
    """Given payments back told Stripe of a 40.00 cheque on in_1 (ledger_paid 4000 done), when
    invoice.paid says 40.00 paid so far, then push books nothing ("already recorded in the ledger");
    when the customer then pays the other 60.00 by card (amount_paid 10000), push books 60.00 only."""
    world = World(ledger_paid={"ledger_payment#P1:L1": entry(4000)})

    world.book(paid_so_far(4000))

    assert world.ledger.created == []
    assert world.payment("in_1:paid:4000").status is SyncStatus.SKIPPED
    assert world.payment("in_1:paid:4000").last_error == "already recorded in the ledger"

    world.book(paid_so_far(10000))

    assert [draft.amount for draft in world.ledger.created] == [Decimal("60.00")]
    assert world.payment("in_1:paid:10000").status is SyncStatus.SYNCED


def test_a_reservation_made_after_push_read_the_invoice_record_still_counts() -> None:
    """Given push read in_1's record before payments back reserved a 100.00 cheque on it (done since),
    then push reads the record again and books nothing for Stripe's 100.00 paid."""
    world = World()
    record, revision = world.state.get(CONNECTION, "invoice", "in_1")
    assert record is not None
    invoice = Invoice(
        source_id="in_1",
        number="INV-1",
        currency="USD",
        customer=Customer(source_id="cus_1"),
        issued_on=date(2026, 12, 1),
        lines=(),
        subtotal=10000,
        total=10000,
        status=InvoiceStatus.PAID,
        payments=(paid_so_far(10000),),
    )
    world.state.reserve_ledger_paid(CONNECTION, "in_1", "ledger_payment#P1:L1", 10000, "done", revision)

    world.push._payments(invoice, record, world.mappings, cast(Any, world.ledger))

    assert world.ledger.created == []


def test_a_pending_ledger_payment_makes_push_wait() -> None:
    """Given a ledger payment's Stripe call still in flight (pending, set a moment ago), then push
    raises TransientError("a payment from the ledger is being recorded in Stripe") and books
    nothing: Stripe's total may not hold that money yet."""
    world = World(ledger_paid={"ledger_payment#P1:L1": entry(4000, "pending")})

    with pytest.raises(TransientError, match="a payment from the ledger is being recorded in Stripe"):
        world.book(paid_so_far(4000))

    assert world.ledger.created == []


def test_a_pending_entry_older_than_the_intent_timeout_is_counted_not_waited_for() -> None:
    """Given a pending entry set longer ago than push's intent timeout (its worker died), then push
    no longer waits: the entry is counted as the ledger's money and only the rest is booked."""
    world = World(ledger_paid={"ledger_payment#P1:L1": entry(4000, "pending", age=timedelta(minutes=5))})

    world.book(paid_so_far(10000))

    assert [draft.amount for draft in world.ledger.created] == [Decimal("60.00")]


def test_our_payment_record_is_skipped_and_a_strangers_is_booked() -> None:
    """Given two InvoicePayment-shaped payments of type payment_record, pr_ours linked to a
    ledger_payment record by payments back and pr_theirs reported by someone else, then push skips
    the first ("recorded from the ledger") and books the second."""
    world = World()
    world.state.link(CONNECTION, "pr_ours", "ledger_payment#P1:L1")
    ours = RecordedPayment(
        source_id="inpay_1",
        invoice_source_id="in_1",
        amount=4000,
        currency="USD",
        paid_on=date(2026, 12, 2),
        payment_record="pr_ours",
    )
    theirs = RecordedPayment(
        source_id="inpay_2",
        invoice_source_id="in_1",
        amount=2500,
        currency="USD",
        paid_on=date(2026, 12, 2),
        payment_record="pr_theirs",
    )

    world.book(ours, theirs)

    assert world.payment("inpay_1").status is SyncStatus.SKIPPED
    assert world.payment("inpay_1").last_error == "recorded from the ledger (ledger_payment#P1:L1)"
    assert [draft.source_id for draft in world.ledger.created] == ["inpay_2"]


def test_each_payment_push_books_is_linked_when_payments_back_is_on() -> None:
    """Given payments back on, when push books Stripe's 100.00, then LINK ledger-payment:LP1 names
    its payment record (rule 2 of loop 1); with payments back off, no link is written."""
    on = World()
    on.book(paid_so_far(10000))
    off = World(payments_back=False)
    off.book(paid_so_far(10000))

    assert on.state.linked(CONNECTION, "ledger-payment:LP1") == "payment#in_1:paid:10000"
    assert off.state.links == {}
    assert [draft.amount for draft in off.ledger.created] == [Decimal("100.00")]
