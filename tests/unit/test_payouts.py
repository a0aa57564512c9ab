"""Payouts as bank deposits (design two-way 3.5.2), on fakes: the deposit a payout books equals the
bank line to the cent, is booked exactly once, and nothing is booked when it cannot be exact.

The world is the design's worked example. Payout po_1QxYz, USD 202.43, arrives 2026-12-04:

| txn   | type       | amount  | fee  | net     | ledger document                     |
| txn_a | charge     | 150.00  | 4.65 | 145.35  | payment in_A:paid:15000 -> QBO 190  |
| txn_b | charge     |  80.00  | 2.62 |  77.38  | payment in_B:paid:8000  -> QBO 191  |
| txn_c | refund     | -20.00  | 0    | -20.00  | refund ch_a:refunded:2000 -> QBO 77 |
| txn_d | stripe_fee |  -0.30  | 0    |  -0.30  | into the fee line                   |
| txn_p | payout     | -202.43 |      |         | the payout's own: left out          |

Deposit = 150.00 + 80.00 - 20.00 - (4.65 + 2.62 + 0.30) = 202.43.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from invoice_sync.errors import ParkError, TransientError
from invoice_sync.ledgers.port import DepositDraft, DepositSupport, LedgerDocument, LedgerPort, marker
from invoice_sync.models.documents import Payment, Payout, version_of
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.models.messages import SyncMessage
from invoice_sync.models.sync import SyncRecord, SyncStatus, utcnow
from invoice_sync.sync.payouts import PayoutService, slip_key
from invoice_sync.sync.push import Outcome, PushResult, PushService, payment_link
from tests.unit.fake_state import FakeAlerts, FakeState

CONNECTION = "acme"
PAYOUT = "po_1QxYz"


def txn(id_: str, type_: str, amount: int, fee: int = 0, source: Any = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "object": "balance_transaction",
        "type": type_,
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "currency": "usd",
        "exchange_rate": None,
        "source": source,
        **extra,
    }


WORKED_EXAMPLE = [
    txn("txn_a", "charge", 15000, 465, {"id": "ch_a", "object": "charge", "payment_intent": "pi_a"}),
    txn("txn_b", "charge", 8000, 262, {"id": "ch_b", "object": "charge", "payment_intent": "pi_b"}),
    txn("txn_c", "refund", -2000, 0, {"id": "re_c", "object": "refund", "charge": "ch_a"}),
    txn("txn_d", "stripe_fee", -30, 0, None),
    txn("txn_p", "payout", -20243, 0, PAYOUT),
]


class FakeStripe:
    def __init__(self, transactions: list[dict[str, Any]]) -> None:
        self.transactions = transactions
        self.invoices_of_intents: dict[str, str] = {}
        self.reads = 0

    def list_balance_transactions(self, payout_id: str) -> list[dict[str, Any]]:
        assert payout_id == PAYOUT
        self.reads += 1
        return self.transactions

    def invoice_of_payment_intent(self, payment_intent: str) -> str | None:
        return self.invoices_of_intents.get(payment_intent)


class FakeLedger:
    def __init__(self, support: DepositSupport = "deposit") -> None:
        self.deposit_support = support
        self.booked: list[tuple[DepositDraft, str]] = []
        self.lose_response = False

    def find_deposit(self, draft: DepositDraft) -> LedgerDocument | None:
        for booked, _ in self.booked:
            if booked.number == draft.number and booked.private_note == draft.private_note:
                return self._document(booked)
        return None

    def create_deposit(self, draft: DepositDraft, idempotency_key: str) -> LedgerDocument:
        self.booked.append((draft, idempotency_key))
        if self.lose_response:
            raise TransientError("connection dropped after the ledger committed")
        return self._document(draft)

    def _document(self, draft: DepositDraft) -> LedgerDocument:
        fees_only = self.deposit_support == "fees_only"
        total = (
            -sum((line.amount for line in draft.lines if line.kind == "fee"), Decimal(0))
            if fees_only
            else draft.total
        )
        return LedgerDocument(
            id=f"D{len(self.booked)}",
            version="0",
            number=draft.number,
            total=total,
            balance=Decimal(0),
            currency=draft.currency,
            private_note=draft.private_note,
        )


class FakeSlips:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, body: bytes, content_type: str) -> None:
        self.objects[key] = body


def connection(**settings: Any) -> Connection:
    values: dict[str, Any] = {
        "connection_id": CONNECTION,
        "tenant_id": "realm-1",
        "payout_deposits": True,
        "payout_bank_account": "35",
        "payout_fee_account": "92",
        "payout_adjustment_account": "94",
        "payout_unmatched_account": "93",
        **settings,
    }
    return Connection(**values)


def payout(**changes: Any) -> Payout:
    values: dict[str, Any] = {
        "source_id": PAYOUT,
        "amount": 20243,
        "currency": "USD",
        "arrival_on": date(2026, 12, 4),
        "automatic": True,
        "status": "paid",
        "reconciliation_status": "completed",
        "balance_transaction": "txn_p",
        "destination": "ba_1",
        "created": 1_764_800_000,
        **changes,
    }
    return Payout(**values)


class World:
    def __init__(self, transactions: list[dict[str, Any]] | None = None, **settings: Any) -> None:
        self.state = FakeState()
        self.alerts = FakeAlerts()
        self.stripe = FakeStripe(list(transactions if transactions is not None else WORKED_EXAMPLE))
        self.slips = FakeSlips()
        self.ledger = FakeLedger()
        self.mappings = Mappings(connection=connection(**settings))
        self.service = PayoutService(
            state=self.state,
            alerts=self.alerts,
            stripe_for=lambda _connection: self.stripe,
            slips=self.slips,
            intent_timeout=timedelta(seconds=120),
        )

    def seed_worked_example(self) -> None:
        self.payment("in_A:paid:15000", "190", 15000, charges=("ch_a", "pi_a"), invoice="in_A")
        self.payment("in_B:paid:8000", "191", 8000, charges=("ch_b", "pi_b"), invoice="in_B")
        self.refund("ch_a:refunded:2000", "77", 2000)

    def payment(
        self,
        source_id: str,
        ledger_id: str,
        minor: int,
        *,
        charges: tuple[str, ...],
        invoice: str,
        **fields: Any,
    ) -> None:
        self.state.put(
            SyncRecord(
                connection_id=CONNECTION,
                kind="payment",
                source_id=source_id,
                status=SyncStatus.SYNCED,
                ledger_id=ledger_id,
                ledger_total=minor,
                source_number=f"INV-{invoice[-1]}",
                **fields,
            )
        )
        self.state.link_charges(CONNECTION, list(charges), invoice)

    def refund(self, source_id: str, ledger_id: str, minor: int) -> None:
        self.state.put(
            SyncRecord(
                connection_id=CONNECTION,
                kind="refund",
                source_id=source_id,
                status=SyncStatus.SYNCED,
                ledger_id=ledger_id,
                ledger_number="RF-1",
                ledger_total=minor,
            )
        )

    def converge(self, subject: Payout | None = None, ledger: FakeLedger | None = None) -> PushResult:
        subject = subject or payout()
        message = SyncMessage(
            connection_id=CONNECTION,
            source="stripe",
            event_id="evt_1",
            event_type="payout.paid",
            version=subject.created * 10 + 5,
            archive_key="raw/stripe/acme/2026/12/04/x.jsonl.gz",
            payout=subject,
        )
        record, revision = self.state.get(CONNECTION, "payout", PAYOUT)
        record = record or SyncRecord(connection_id=CONNECTION, kind="payout", source_id=PAYOUT)
        used = ledger or self.ledger
        return self.service.converge(
            message, subject, record, revision, self.mappings, lambda _m: cast(LedgerPort, used)
        )

    def payout_record(self) -> SyncRecord:
        return self.state.record(CONNECTION, "payout", PAYOUT)


def test_the_worked_example_books_one_deposit_equal_to_the_bank_line() -> None:
    """Given the worked example's payments and refund synced, when its payout arrives, then one
    deposit of 202.43 links QBO payments 190 and 191 and refund receipt 77, with one fee line of
    -7.57, and each of those records is marked as taken by this payout."""
    world = World()
    world.seed_worked_example()

    result = world.converge()

    assert result.outcome is Outcome.SYNCED
    [(draft, _key)] = world.ledger.booked
    assert draft.total == Decimal("202.43")
    assert [(line.kind, line.amount, line.ledger_id, line.account) for line in draft.lines] == [
        ("payment", Decimal("150.00"), "190", None),
        ("payment", Decimal("80.00"), "191", None),
        ("refund", Decimal("-20.00"), "77", None),
        ("fee", Decimal("-7.57"), None, "92"),
    ]
    assert draft.bank_account == "35"
    assert draft.number == "PO-1QxYz"
    assert draft.private_note == marker("stripe", PAYOUT)
    record = world.payout_record()
    assert (record.status, record.ledger_id, record.ledger_total, record.source_total) == (
        SyncStatus.SYNCED,
        "D1",
        20243,
        20243,
    )
    for kind, source_id in (
        ("payment", "in_A:paid:15000"),
        ("payment", "in_B:paid:8000"),
        ("refund", "ch_a:refunded:2000"),
    ):
        assert world.state.record(CONNECTION, kind, source_id).deposit_id == PAYOUT
    assert world.alerts.published == []


def test_a_payout_whose_transactions_do_not_add_up_is_parked_and_nothing_is_booked() -> None:
    """Given the same transactions but a payout of 203.03, when it converges, then it parks as
    "payout does not add up" with both figures, and the ledger sees no write."""
    world = World()
    world.seed_worked_example()

    with pytest.raises(ParkError, match="payout does not add up") as raised:
        world.converge(payout(amount=20303))

    assert "payout does not add up" in str(raised.value)
    assert "20303" in str(raised.value) and "20243" in str(raised.value)
    assert world.ledger.booked == []


def test_a_retry_after_a_lost_response_adopts_the_deposit_instead_of_booking_another() -> None:
    """Given the ledger committed the deposit but its answer was lost, when the message comes back
    after the intent's timeout, then the deposit is found by its reference and marker and adopted:
    the ledger holds one deposit, and the records are marked."""
    world = World()
    world.seed_worked_example()
    world.ledger.lose_response = True
    with pytest.raises(TransientError):
        world.converge()
    world.ledger.lose_response = False
    record = world.payout_record()
    assert record.status is SyncStatus.PENDING and record.idempotency_key
    record.updated_at = utcnow() - timedelta(seconds=300)  # the first worker is long gone
    world.state.records[(CONNECTION, "payout", PAYOUT)] = (
        record,
        world.state.get(CONNECTION, "payout", PAYOUT)[1],
    )

    result = world.converge()

    assert result.outcome is Outcome.SYNCED
    assert len(world.ledger.booked) == 1
    assert world.payout_record().ledger_id == "D1"
    assert world.state.record(CONNECTION, "payment", "in_B:paid:8000").deposit_id == PAYOUT


def test_the_same_payout_again_is_a_no_op() -> None:
    """Given a payout already booked, when its reconciliation_completed event follows, then nothing
    is read from Stripe nor written to the ledger again."""
    world = World()
    world.seed_worked_example()
    world.converge()
    reads = world.stripe.reads

    result = world.converge()

    assert result.outcome is Outcome.UNCHANGED
    assert (len(world.ledger.booked), world.stripe.reads) == (1, reads)


def test_a_charge_with_no_synced_payment_goes_to_the_unmatched_account_with_one_alert() -> None:
    """Given invoice B's payment not in the books (parked, say), when the payout converges, then its
    80.00 is a line to the unmatched account, the deposit still equals 202.43, and one alert names
    the charge; a redelivery does not alert again."""
    world = World()
    world.payment("in_A:paid:15000", "190", 15000, charges=("ch_a", "pi_a"), invoice="in_A")
    world.refund("ch_a:refunded:2000", "77", 2000)

    world.converge()

    [(draft, _)] = world.ledger.booked
    assert draft.total == Decimal("202.43")
    unmatched = [line for line in draft.lines if line.kind == "unmatched"]
    assert [(line.amount, line.account) for line in unmatched] == [(Decimal("80.00"), "93")]
    assert world.alerts.reasons == ["payout line without its ledger document"]
    assert "ch_b" in world.alerts.published[0][1]


def test_a_payment_another_payout_took_is_not_taken_again() -> None:
    """Given invoice A's payment already deposited by another payout, when this payout names the
    same charge, then its money is unmatched rather than deposited twice."""
    world = World()
    world.seed_worked_example()
    record = world.state.record(CONNECTION, "payment", "in_A:paid:15000")
    record.deposit_id = "po_other"
    world.state.put(record)

    world.converge()

    [(draft, _)] = world.ledger.booked
    assert ("payment", "190") not in [(line.kind, line.ledger_id) for line in draft.lines]
    assert [line.amount for line in draft.lines if line.kind == "unmatched"] == [Decimal("150.00")]


def test_a_charge_found_through_stripe_is_linked_for_next_time() -> None:
    """Given a payment record but no charge link (booked before links were written), when Stripe's
    invoice payments say which invoice the payment intent paid, then the payment is found and the
    link is written."""
    world = World()
    world.seed_worked_example()
    world.state.charges.pop((CONNECTION, "ch_b"))
    world.state.charges.pop((CONNECTION, "pi_b"))
    world.stripe.invoices_of_intents["pi_b"] = "in_B"

    world.converge()

    [(draft, _)] = world.ledger.booked
    assert ("payment", "191") in [(line.kind, line.ledger_id) for line in draft.lines]
    assert world.state.invoice_of_charge(CONNECTION, ["ch_b"]) == "in_B"


def test_a_payment_linked_by_its_charge_is_found_without_the_invoice_prefix() -> None:
    """Given an InvoicePayment-shaped payment record (inpay_..., no invoice prefix) that push linked
    to its charge, when the payout names that charge, then that record is the deposit's line."""
    world = World()
    world.payment("inpay_1", "190", 15000, charges=(), invoice="in_A")
    world.state.links[(CONNECTION, payment_link("ch_a"))] = "payment#inpay_1"
    world.payment("in_B:paid:8000", "191", 8000, charges=("ch_b", "pi_b"), invoice="in_B")
    world.refund("ch_a:refunded:2000", "77", 2000)

    world.converge()

    [(draft, _)] = world.ledger.booked
    assert [line.ledger_id for line in draft.lines if line.kind == "payment"] == ["190", "191"]


def test_disputes_go_to_the_adjustment_account() -> None:
    """Given a dispute withdrawal of 50.00 (with its 15.00 fee) in the payout, when it converges,
    then the dispute is an adjustment line and its fee joins the fee line; the total still holds."""
    transactions = [
        *WORKED_EXAMPLE[:4],
        txn("txn_e", "adjustment", -5000, 1500, {"id": "du_1", "object": "dispute"}),
    ]
    world = World(transactions)
    world.seed_worked_example()

    world.converge(payout(amount=20243 - 6500))

    [(draft, _)] = world.ledger.booked
    assert [
        (line.kind, line.amount, line.account) for line in draft.lines if line.kind in {"adjustment", "fee"}
    ] == [
        ("adjustment", Decimal("-50.00"), "94"),
        ("fee", Decimal("-22.57"), "92"),
    ]
    assert draft.total == Decimal("137.43")


def test_a_manual_payout_is_skipped_with_one_alert_per_connection() -> None:
    """Given manual payouts (Stripe cannot say what they settle), when two arrive, then both are
    skipped, nothing is read or booked, and one alert recommends automatic payouts."""
    world = World()
    for _ in range(2):
        result = world.converge(payout(automatic=False, reconciliation_status="not_applicable"))
        assert result.outcome is Outcome.SKIPPED
    assert world.ledger.booked == [] and world.stripe.reads == 0
    assert len(world.alerts.published) == 1
    assert "automatic payouts" in world.alerts.published[0][1]


def test_a_payout_stripe_is_still_reconciling_comes_back_later() -> None:
    """Given a paid payout whose reconciliation is in progress, when it converges, then it is
    retried (its transactions are not final yet)."""
    world = World()
    with pytest.raises(TransientError):
        world.converge(payout(reconciliation_status="in_progress"))
    assert world.ledger.booked == []


def test_a_payout_that_failed_after_its_deposit_parks_for_a_person() -> None:
    """Given a payout booked as a deposit, when Stripe later says it failed, then the record parks
    (the deposit must be voided by a person) and the ledger is not touched."""
    world = World()
    world.seed_worked_example()
    world.converge()

    with pytest.raises(ParkError, match="payout failed after its deposit was booked"):
        world.converge(payout(status="failed"))
    assert len(world.ledger.booked) == 1


def test_a_failed_payout_with_no_deposit_is_skipped() -> None:
    world = World()
    result = world.converge(payout(status="failed"))
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "payout failed: no money arrived")


def test_a_payout_converted_from_another_currency_parks() -> None:
    """Given a transaction with an exchange rate, when the payout converges, then it parks: ledger
    payments are in invoice currency, so no exact deposit exists."""
    transactions = [dict(WORKED_EXAMPLE[0], exchange_rate=1.08), *WORKED_EXAMPLE[1:]]
    world = World(transactions)
    world.seed_worked_example()
    with pytest.raises(ParkError, match="multi-currency payout not supported yet"):
        world.converge()
    assert world.ledger.booked == []


def test_missing_payout_accounts_ask_for_a_mapping() -> None:
    """Given no fee account set, when a payout with fees converges, then it waits for the mapping
    (needs_mapping names the setting) and nothing is booked."""
    world = World(payout_fee_account=None)
    world.seed_worked_example()
    with pytest.raises(ParkError, match="payout_fee_account") as raised:
        world.converge()
    assert getattr(raised.value, "status", None) is SyncStatus.NEEDS_MAPPING
    assert world.ledger.booked == []


def test_payout_deposits_off_skips_without_reading_stripe() -> None:
    world = World(payout_deposits=False)
    result = world.converge()
    assert result.outcome is Outcome.SKIPPED and world.stripe.reads == 0


def test_freshbooks_books_the_fees_and_writes_the_deposit_slip() -> None:
    """Given a FreshBooks connection (no deposit API), when the payout converges, then the fees are
    one expense of 7.57, the slip (CSV and JSON) holds every line and the total 202.43, and the
    record is synced, saying the deposit is a slip only."""
    world = World(payout_bank_account=None, payout_adjustment_account=None, payout_unmatched_account=None)
    world.seed_worked_example()
    ledger = FakeLedger("fees_only")

    result = world.converge(ledger=ledger)

    assert result.outcome is Outcome.SYNCED
    record = world.payout_record()
    assert (record.ledger_total, record.last_error) == (
        757,
        "deposit slip only: FreshBooks has no deposit API",
    )
    csv_text = world.slips.objects[slip_key(CONNECTION, PAYOUT, "csv")].decode()
    assert "total,202.43" in csv_text
    assert "payment,150.00,Payment of INV-A,190" in csv_text
    assert slip_key(CONNECTION, PAYOUT, "json") in world.slips.objects


class Rules:
    """The Mappings source push reads: one connection."""

    def __init__(self, mappings: Mappings) -> None:
        self._mappings = mappings

    def mappings(self, connection_id: str) -> Mappings | None:
        return self._mappings if connection_id == CONNECTION else None

    def forget(self, connection_id: str) -> None:
        return None


def pushing(world: World) -> PushService:
    """Push on the world's state, mappings and ledger, with its payout service."""
    return PushService(
        state=cast(Any, world.state),
        mappings=cast(Any, Rules(world.mappings)),
        archive=cast(Any, None),
        alerts=world.alerts,
        ledger_for=lambda _: cast(Any, world.ledger),
        payouts=world.service,
    )


def payout_message(subject: Payout) -> SyncMessage:
    return SyncMessage(
        connection_id=CONNECTION,
        source="stripe",
        event_id="evt_2",
        event_type="payout.paid",
        version=version_of(subject.created, subject),
        archive_key="raw/stripe/acme/2026/12/04/y.jsonl.gz",
        payout=subject,
    )


def test_push_hands_a_payout_message_to_the_payout_service_under_its_own_record() -> None:
    """Given push built with the payout service, when a payout.paid message arrives, then the
    deposit is booked and the payout's record (kind payout) says synced, with the message's event."""
    world = World()
    world.seed_worked_example()
    push = pushing(world)

    result = push.handle(payout_message(payout()))

    assert result.outcome is Outcome.SYNCED
    record = world.payout_record()
    assert (record.kind, record.event_id, record.ledger_id) == ("payout", "evt_2", "D1")


def test_push_parks_a_payout_it_cannot_book_with_its_reason_and_one_alert() -> None:
    """Given a payout that does not add up, when push handles it, then its record is parked with the
    reason, one alert goes out, and nothing is raised back to the queue."""
    world = World()
    world.seed_worked_example()
    push = pushing(world)

    result = push.handle(payout_message(payout(amount=20303)))

    assert (result.outcome, result.reason) == (Outcome.PARKED, "payout does not add up")
    record = world.payout_record()
    assert record.status is SyncStatus.REJECTED and "20303" in (record.last_error or "")
    assert world.alerts.reasons == ["payout does not add up"]
    assert world.ledger.booked == []


def test_push_links_each_charge_of_a_payment_it_books_when_payout_deposits_are_on() -> None:
    """Given payout deposits on, when push books an InvoicePayment-shaped payment (inpay_..., its
    record id not prefixed by the invoice), then each of its charges names that record, which is
    how the payout that settles the charge finds it."""
    from tests.unit.test_push_echo import World as PushWorld  # noqa: PLC0415 - the push-side world

    world = PushWorld(payments_back=False)
    world.mappings = Mappings(connection=connection())
    paid = Payment(
        source_id="inpay_1",
        invoice_source_id="in_1",
        amount=10000,
        currency="USD",
        paid_on=date(2026, 12, 2),
        charges=("pi_1", "ch_1"),
    )

    world.book(paid)

    assert world.state.linked(CONNECTION, payment_link("ch_1")) == "payment#inpay_1"
    assert world.state.linked(CONNECTION, payment_link("pi_1")) == "payment#inpay_1"


def test_a_payout_debiting_the_bank_parks_for_a_person() -> None:
    """Given a paid payout of -5.00 (Stripe reclaiming a negative balance), when it converges, then
    it parks with that reason and nothing is read or booked."""
    world = World()
    with pytest.raises(ParkError, match="payout debits the bank"):
        world.converge(payout(amount=-500))
    assert world.ledger.booked == [] and world.stripe.reads == 0


def test_a_batch_holding_payout_paid_and_its_reconciliation_books_once_from_the_newer() -> None:
    """Given payout.paid (reconciliation in progress) and payout.reconciliation_completed in one
    batch, when push handles it, then the older is superseded and the newer books the deposit: no
    retry, one deposit."""
    world = World()
    world.seed_worked_example()
    push = pushing(world)
    paid = payout(reconciliation_status="in_progress")
    completed = payout()

    results = push.handle_batch([payout_message(paid), payout_message(completed)])

    assert [getattr(r, "outcome", r) for r in results] == [Outcome.STALE, Outcome.SYNCED]
    assert len(world.ledger.booked) == 1


def test_a_refused_stripe_read_key_breaks_the_connection_instead_of_retrying_forever() -> None:
    """Given Stripe refusing the connection's read key, when a payout converges, then it raises
    the connection error (parked with one alert for the connection by push), not a bare Stripe
    error that would only ever be retried."""
    from invoice_sync.errors import ConnectionBroken  # noqa: PLC0415
    from invoice_sync.sources.stripe_api import StripeAuthError  # noqa: PLC0415

    world = World()

    def refused(_payout_id: str) -> list[dict[str, Any]]:
        raise StripeAuthError("401 on /v1/balance_transactions: Invalid API Key provided", status=401)

    world.stripe.list_balance_transactions = refused  # type: ignore[method-assign]
    with pytest.raises(ConnectionBroken, match="Stripe key refused"):
        world.converge()
    assert world.ledger.booked == []


def test_a_freshbooks_payout_without_fees_is_still_recorded_once() -> None:
    """Given a FreshBooks payout with no fee at all, when it converges twice, then the slip is
    written, the record holds the adapter's answer (a deposit of 0) and the second delivery is a
    no-op."""
    transactions = [
        txn("txn_a", "charge", 15000, 0, {"id": "ch_a", "object": "charge", "payment_intent": "pi_a"})
    ]
    world = World(transactions, payout_bank_account=None)
    world.payment("in_A:paid:15000", "190", 15000, charges=("ch_a", "pi_a"), invoice="in_A")
    ledger = FakeLedger("fees_only")

    first = world.converge(payout(amount=15000), ledger=ledger)
    again = world.converge(payout(amount=15000), ledger=ledger)

    assert (first.outcome, again.outcome) == (Outcome.SYNCED, Outcome.UNCHANGED)
    assert len(ledger.booked) == 1
    assert world.payout_record().ledger_total == 0
    assert slip_key(CONNECTION, PAYOUT, "csv") in world.slips.objects


def test_a_stripe_key_alert_says_to_store_a_key_not_to_reconnect_the_ledger() -> None:
    """Given a connection broken by its Stripe key, then its alert points at the Stripe secrets; a
    ledger's refusal still says to reconnect the ledger."""
    from invoice_sync.errors import ConnectionBroken  # noqa: PLC0415
    from invoice_sync.sync.push import publish_connection  # noqa: PLC0415

    alerts = FakeAlerts()
    publish_connection(alerts, CONNECTION, ConnectionBroken("Stripe key refused", "401"))
    publish_connection(alerts, CONNECTION, ConnectionBroken("ledger authorisation revoked", "reconnect"))
    stripe_text, ledger_text = (text for _, text, _ in alerts.published)
    assert "invoice-sync secret stripe-api" in stripe_text and "connect LEDGER" not in stripe_text
    assert "invoice-sync connect LEDGER" in ledger_text
