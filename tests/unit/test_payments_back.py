"""Payments back, the service on fakes (no I/O): a payment a person records in the ledger marks its
Stripe invoice paid exactly once (design two-way 3.3, 3.5.1, 3.6 loop 1, 3.7 and section 4).

The world: invoice in_1 (INV-1, USD 100.00) synced to ledger invoice L1 (our marker on it), open in
Stripe. A person records cheque P1 in the ledger against L1."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr

from invoice_sync.errors import LedgerUnavailable, LedgerValidation, NotFound, TokenRevoked, TransientError
from invoice_sync.ledgers.port import LedgerDocument, LedgerPayment, PaymentApplication, marker
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.models.summary import DocumentSummary
from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.sources.stripe_api import StripeApiError, StripeAuthError, StripeUnavailable
from invoice_sync.store.sync_state import PendingCallback
from invoice_sync.sync import payments_back as pb
from invoice_sync.sync.payments_back import Outcome, PaymentsBackService, Step, StripeInvoice, plan
from tests.unit.fake_state import FakeAlerts, FakeState

CONNECTION = "acme"
RECORD = "P1:L1"
RESERVATION = f"ledger_payment#{RECORD}"


class FakeStripe:
    """Stripe's invoices, payment records and idempotency keys, in memory. ``effects`` lists the
    writes that changed something (a replayed key changes nothing); ``fail`` queues an error for a
    method, raised before acting or, with ``acted``, after."""

    def __init__(self) -> None:
        self.invoices: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self.effects: list[tuple[str, str]] = []
        self.keys: list[tuple[str, str]] = []
        self.reads = 0
        self.fail: dict[str, list[tuple[StripeApiError, bool]]] = {}

    def add_invoice(
        self, invoice_id: str, total: int = 10000, *, status: str = "open", currency: str = "usd"
    ) -> None:
        self.invoices[invoice_id] = {
            "id": invoice_id,
            "object": "invoice",
            "number": "INV-1",
            "customer": "cus_1",
            "currency": currency,
            "status": status,
            "total": total,
            "amount_paid": total if status == "paid" else 0,
            "amount_remaining": 0 if status == "paid" else total,
            "off_stripe": 0,
            "payments": [],
        }

    def _failure(self, method: str) -> tuple[StripeApiError, bool] | None:
        queue = self.fail.get(method) or []
        return queue.pop(0) if queue else None

    def get_invoice(self, invoice_id: str, expand: Any = ()) -> dict[str, Any]:
        self.reads += 1
        failure = self._failure("get")
        if failure:
            raise failure[0]
        found = copy.deepcopy(self.invoices[invoice_id])
        if "payments" in expand:
            found["payments"] = {"object": "list", "data": found["payments"], "has_more": False}
        if "amount_paid_off_stripe" in expand:
            found["amount_paid_off_stripe"] = found["off_stripe"]
        return found

    def list_invoice_payments(self, invoice_id: str, *, status: str | None = None) -> list[dict[str, Any]]:
        return list(self.invoices[invoice_id]["payments"])

    def _write(self, method: str, key: str, act: Any) -> dict[str, Any]:
        self.keys.append((method, key))
        if key in self.answers:
            return self.answers[key]
        failure = self._failure(method)
        if failure and not failure[1]:
            raise failure[0]
        answer: dict[str, Any] = act()
        self.answers[key] = answer
        if failure:
            raise failure[0]
        return answer

    def pay_out_of_band(self, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            invoice = self.invoices[invoice_id]
            if invoice["status"] != "open":
                raise StripeApiError("invoice is not open", status=400, code="invoice_not_open")
            invoice["off_stripe"] += invoice["amount_remaining"]
            invoice["amount_paid"] += invoice["amount_remaining"]
            invoice["amount_remaining"] = 0
            invoice["status"] = "paid"
            self.effects.append(("pay", invoice_id))
            return copy.deepcopy(invoice)

        return self._write("pay", idempotency_key, act)

    def report_payment(
        self, *, amount: int, currency: str, idempotency_key: str, **rest: Any
    ) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            record_id = f"pr_{len(self.records) + 1}"
            self.records[record_id] = {
                "id": record_id,
                "object": "payment_record",
                "amount": amount,
                "currency": currency,
                **rest,
            }
            self.effects.append(("report", record_id))
            return self.records[record_id]

        return self._write("report", idempotency_key, act)

    def attach_payment(self, invoice_id: str, payment_record_id: str, idempotency_key: str) -> dict[str, Any]:
        def act() -> dict[str, Any]:
            invoice = self.invoices[invoice_id]
            amount = self.records[payment_record_id]["amount"]
            invoice["payments"].append(
                {
                    "id": f"inpay_{len(invoice['payments']) + 1}",
                    "status": "paid",
                    "amount_paid": amount,
                    "payment": {"type": "payment_record", "payment_record": payment_record_id},
                }
            )
            invoice["off_stripe"] += amount
            invoice["amount_paid"] += amount
            invoice["amount_remaining"] -= amount
            if invoice["amount_remaining"] == 0:
                invoice["status"] = "paid"
            self.effects.append(("attach", payment_record_id))
            return copy.deepcopy(invoice)

        return self._write("attach", idempotency_key, act)


class FakeLedger:
    def __init__(self) -> None:
        self.payments: dict[str, LedgerPayment] = {}
        self.invoices: dict[str, LedgerDocument] = {}

    def get_ledger_payment(self, ledger_id: str) -> LedgerPayment:
        if ledger_id not in self.payments:
            raise NotFound(f"payment {ledger_id} not found", code="610")
        return self.payments[ledger_id]

    def get_invoice(self, ledger_id: str) -> LedgerDocument:
        if ledger_id not in self.invoices:
            raise NotFound(f"invoice {ledger_id} not found", code="610")
        return self.invoices[ledger_id]


class CallbackState(FakeState):
    """FakeState with FreshBooks callback registrations (FBHOOK#), as SyncStateStore keeps them."""

    def __init__(self) -> None:
        super().__init__()
        self.callbacks: dict[tuple[str, str], PendingCallback] = {}

    def pending_callback(self, connection_id: str, callback_id: str) -> PendingCallback | None:
        return self.callbacks.get((connection_id, callback_id))

    def mark_callback_verified(self, connection_id: str, callback_id: str) -> bool:
        found = self.callbacks.get((connection_id, callback_id))
        if found is None or found.state != "pending":
            return False
        self.callbacks[(connection_id, callback_id)] = replace(found, state="verified")
        return True


class FakeFreshBooks(FakeLedger):
    """A ledger whose callbacks are verified by their code: ``codes`` holds each callback's, and
    ``fail`` an error to raise (once) before checking."""

    def __init__(self) -> None:
        super().__init__()
        self.codes: dict[str, str] = {}
        self.verified: list[str] = []
        self.sent: list[object] = []
        self.fail: list[Exception] = []

    def verify_callback(self, callback_id: str, verifier: SecretStr) -> None:
        self.sent.append(verifier)
        if self.fail:
            raise self.fail.pop(0)
        if callback_id not in self.codes:
            raise NotFound("FreshBooks: Callback not found. (callback.callbackid)", code="1012")
        if verifier.get_secret_value() != self.codes[callback_id]:
            raise LedgerValidation("FreshBooks: The verifier is not valid. (callback.verifier)", code="1004")
        self.verified.append(callback_id)


class FakeKeys:
    def __init__(self) -> None:
        self.keys: dict[str, list[str]] = {}
        self.fail: list[Exception] = []

    def add_ledger_webhook_key(self, connection_id: str, key: str) -> None:
        if self.fail:
            raise self.fail.pop(0)
        held = self.keys.setdefault(connection_id, [])
        held[:] = [key, *(k for k in held if k != key)]


class FakeMappings:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def mappings(self, connection_id: str) -> Mappings | None:
        return (
            Mappings(connection=self.connection) if connection_id == self.connection.connection_id else None
        )


class World:
    def __init__(self, **connection: Any) -> None:
        self.state = CallbackState()
        self.alerts = FakeAlerts()
        self.ledger: FakeLedger = FakeLedger()
        self.keys = FakeKeys()
        self.stripe = FakeStripe()
        self.stripe_built = 0
        settings = {"connection_id": CONNECTION, "tenant_id": "realm-1", "payments_back": True, **connection}
        self.mappings = FakeMappings(Connection(**settings))
        self.service = PaymentsBackService(
            state=self.state,  # type: ignore[arg-type]
            mappings=self.mappings,
            alerts=self.alerts,
            ledger_for=lambda _: self.ledger,  # type: ignore[arg-type,return-value]
            stripe_for=self._stripe,
            # Each retry in these tests comes straight after the last: none is another worker's.
            intent_timeout=timedelta(0),
            webhook_keys=self.keys,
        )
        self.state.put(
            SyncRecord(
                connection_id=CONNECTION,
                kind="invoice",
                source_id="in_1",
                status=SyncStatus.SYNCED,
                ledger_id="L1",
                source_number="INV-1",
                currency="USD",
                source_total=10000,
                ledger_total=10000,
            )
        )
        self.ledger.invoices["L1"] = LedgerDocument(
            id="L1",
            version="3",
            number="INV-1",
            total=Decimal("100.00"),
            balance=Decimal("100.00"),
            currency="USD",
            private_note=marker("stripe", "in_1"),
        )
        self.stripe.add_invoice("in_1")
        self.state.saves.clear()  # what a test's handling writes, from here on

    def _stripe(self, _: Connection) -> FakeStripe:
        self.stripe_built += 1
        return self.stripe

    def cheque(
        self,
        amount: str = "100.00",
        *,
        version: str = "0",
        pid: str = "P1",
        invoice: str = "L1",
        note: str | None = "Cheque 1042",
        reference: str | None = "1042",
    ) -> LedgerPayment:
        payment = LedgerPayment(
            id=pid,
            version=version,
            currency="USD",
            total=Decimal(amount),
            paid_on=date(2026, 12, 1),
            note=note,
            reference=reference,
            method="Check",
            applications=(PaymentApplication(invoice, Decimal(amount)),),
        )
        self.ledger.payments[pid] = payment
        return payment

    def handle(self, pid: str = "P1", operation: str = "create", **fields: Any) -> pb.BackResult:
        return self.service.handle(message(pid, operation, **fields))

    def record(self, source_id: str = RECORD) -> SyncRecord:
        return self.state.record(CONNECTION, "ledger_payment", source_id)

    def ledger_paid(self) -> dict[str, tuple[int, str]]:
        invoice = self.state.record(CONNECTION, "invoice", "in_1")
        return {key: (entry.amount, entry.state) for key, entry in (invoice.ledger_paid or {}).items()}


def message(object_id: str = "P1", operation: str = "create", **fields: Any) -> LedgerEventMessage:
    values: dict[str, Any] = {
        "connection_id": CONNECTION,
        "ledger": "quickbooks",
        "kind": "payment",
        "object_id": object_id,
        "operation": operation,
        "changed_at": None,
        "event_id": f"evt-{object_id}-{operation}",
        **fields,
    }
    return LedgerEventMessage(**values)


# --- telling Stripe -------------------------------------------------------------------------------


def test_the_whole_amount_due_pays_the_invoice_out_of_band() -> None:
    """Given a cheque for all of INV-1, when its event is handled, then Stripe's invoice is paid out
    of band once under the record's key, the record is synced naming in_1, the invoice's record holds
    the money as done, and nobody is alerted."""
    world = World()
    world.cheque("100.00")

    result = world.handle()

    assert result.outcome is Outcome.SYNCED
    assert world.stripe.effects == [("pay", "in_1")]
    record = world.record()
    assert record.status is SyncStatus.SYNCED
    assert (record.stripe_object, record.source_target, record.ledger_total) == ("in_1", "in_1", 10000)
    assert record.direction == "to_source"
    assert world.stripe.keys == [("pay", record.idempotency_key)]
    assert world.ledger_paid() == {RESERVATION: (10000, "done")}
    assert world.alerts.published == []
    # The nightly export's payments_back.csv reads when and how it was paid from the summary.
    summary = DocumentSummary.load(record.summary)
    assert summary is not None
    assert (summary.issued_on, summary.reference, summary.total) == (date(2026, 12, 1), "1042", 10000)


def test_less_than_is_due_is_a_payment_record_reported_then_attached() -> None:
    """Given a cheque for 40.00 of INV-1's 100.00, then a payment record of 4000 USD cents is reported
    (custom method "Recorded in QuickBooks", the ledger payment as its reference, the record in its
    metadata) and attached under two keys of the one intent; the record names the pr_, which is
    linked back to the record for push (loop 2), and 60.00 is still due in Stripe."""
    world = World()
    world.cheque("40.00")

    assert world.handle().outcome is Outcome.SYNCED

    assert world.stripe.effects == [("report", "pr_1"), ("attach", "pr_1")]
    reported = world.stripe.records["pr_1"]
    assert (reported["amount"], reported["currency"], reported["customer"]) == (4000, "usd", "cus_1")
    assert reported["display_name"] == "Recorded in QuickBooks"
    assert reported["payment_reference"] == "quickbooks:P1"
    assert reported["metadata"] == {"invoice_sync_connection": CONNECTION, "invoice_sync_record": RESERVATION}
    assert reported["initiated_at"] == int(datetime(2026, 12, 1, 12, tzinfo=UTC).timestamp())
    record = world.record()
    assert record.stripe_object == "pr_1"
    assert [key for _, key in world.stripe.keys] == [
        f"{record.idempotency_key}:report",
        f"{record.idempotency_key}:attach",
    ]
    assert world.state.linked(CONNECTION, "pr_1") == RESERVATION
    assert world.stripe.invoices["in_1"]["amount_remaining"] == 6000
    assert world.ledger_paid() == {RESERVATION: (4000, "done")}


def test_a_second_cheque_for_the_rest_pays_what_remains() -> None:
    """Given 40.00 then a second cheque of 60.00, then the first is a payment record and the second
    pays what remains out of band: Stripe shows the invoice paid, both shares held on the invoice."""
    world = World()
    world.cheque("40.00")
    world.handle()
    world.cheque("60.00", pid="P2")

    assert world.handle("P2").outcome is Outcome.SYNCED

    # What remains due is "the whole amount still due" (3.5.1 step 5): paid out of band.
    assert world.stripe.effects == [("report", "pr_1"), ("attach", "pr_1"), ("pay", "in_1")]
    assert world.stripe.invoices["in_1"]["status"] == "paid"
    assert world.ledger_paid() == {RESERVATION: (4000, "done"), "ledger_payment#P2:L1": (6000, "done")}


# --- refusing what a person must decide -------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "status", "currency", "reason"),
    [
        ("120.00", "open", "usd", pb.EXCEEDS),
        ("100.00", "paid", "usd", pb.PAID_BOTH_SIDES),
        ("100.00", "open", "eur", pb.CURRENCY_DIFFERS),
        ("100.00", "void", "usd", pb.NOT_PAYABLE),
        ("100.00", "draft", "usd", pb.NOT_PAYABLE),
    ],
)
def test_what_stripe_cannot_take_parks_with_one_alert_and_releases_the_reservation(
    amount: str, status: str, currency: str, reason: str
) -> None:
    """Given a cheque Stripe's invoice cannot take (more than is due, paid already, another currency,
    void or draft), then nothing is written to Stripe, the record is rejected with the stable reason,
    one alert goes out, the money is not held on the invoice, and the same event again alerts no more."""
    world = World()
    world.stripe.add_invoice("in_1", status=status, currency=currency)
    world.cheque(amount)

    result = world.handle()
    again = world.handle()

    assert result.outcome is Outcome.PARKED
    assert result.reason == reason
    assert again.outcome is Outcome.UNCHANGED
    assert world.stripe.effects == []
    record = world.record()
    assert record.status is SyncStatus.REJECTED
    assert record.alerted_reason == reason
    assert world.alerts.reasons == [reason]
    assert world.ledger_paid() == {}


def test_an_invoice_stripe_does_not_have_parks_as_not_found() -> None:
    """Given the Stripe invoice is gone (404), then the record parks as "invoice not found in Stripe"."""
    world = World()
    world.cheque()
    del world.stripe.invoices["in_1"]
    world.stripe.fail["get"] = [(pb.StripeNotFound("no such invoice", status=404), False)]

    assert world.handle().reason == pb.NOT_IN_STRIPE
    assert world.ledger_paid() == {}


def test_a_refused_stripe_key_fails_the_connection_with_one_alert_for_it() -> None:
    """Given Stripe refuses the writer key, then the record fails as the connection's and one
    connection alert goes out, however many cheques follow."""
    world = World()
    world.cheque()
    world.cheque(pid="P2")
    world.stripe.fail["get"] = [(StripeAuthError("refused", status=401), False)] * 2

    world.handle()
    world.handle("P2")

    assert world.record().status is SyncStatus.FAILED
    assert world.alerts.reasons == ["Stripe key refused"]
    assert world.alerts.published[0][2]["kind"] == "connection"


# --- echoes and strangers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("note", "reference"),
    [
        (marker("stripe", "in_1:paid:10000"), None),  # a payment push booked
        ("invoice-sync: applies credit memo 7", None),  # a credit application push made
        (None, marker("stripe", "inpay_1")),  # Xero keeps the marker in Reference
    ],
)
def test_a_payment_with_our_marker_is_ours_and_nothing_is_written(
    note: str | None, reference: str | None
) -> None:
    """Given a ledger payment whose note or reference carries invoice-sync's marker, then it is an
    echo: no record, no reservation, no Stripe client even built."""
    world = World()
    world.cheque(note=note, reference=reference)

    assert world.handle().outcome is Outcome.OURS
    assert world.state.get(CONNECTION, "ledger_payment", RECORD) == (None, 0)
    assert world.stripe_built == 0
    assert world.ledger_paid() == {}


def test_a_payment_push_booked_is_ours_by_its_link_even_with_its_note_edited() -> None:
    """Given push's link ledger-payment:P1 -> payment#… (rule 2) and a note someone rewrote, then P1
    is still ours and Stripe is not told."""
    world = World()
    world.cheque(note="edited by the bookkeeper", reference=None)
    world.state.link(CONNECTION, "ledger-payment:P1", "payment#in_1:paid:10000")

    assert world.handle().outcome is Outcome.OURS
    assert world.stripe_built == 0


def test_a_payment_on_an_invoice_not_from_stripe_is_skipped_without_an_alert() -> None:
    """Given a cheque on ledger invoice L9, which carries no marker, then the record is skipped as
    "invoice not from the source", logged, never alerted, Stripe never asked; the same event again
    asks the ledger nothing new."""
    world = World()
    world.ledger.invoices["L9"] = replace(
        world.ledger.invoices["L1"], id="L9", private_note="typed in by hand"
    )
    world.cheque(invoice="L9")

    result = world.handle()

    assert (result.outcome, result.reason) == (Outcome.SKIPPED, pb.NOT_FROM_SOURCE)
    assert world.record("P1:L9").status is SyncStatus.SKIPPED
    assert world.alerts.published == []
    assert world.stripe_built == 0
    assert world.handle().outcome is Outcome.UNCHANGED


def test_a_marker_copied_onto_a_strangers_invoice_is_not_from_the_source() -> None:
    """Given ledger invoice L9 carries in_1's marker (copied by hand) but in_1's record names L1,
    then a cheque on L9 is skipped: both checks must hold."""
    world = World()
    world.ledger.invoices["L9"] = replace(world.ledger.invoices["L1"], id="L9")
    world.cheque(invoice="L9")

    assert world.handle().reason == pb.NOT_FROM_SOURCE
    assert world.stripe.effects == []


def test_a_generic_source_takes_no_payments_back() -> None:
    """Given a connection whose source is the generic webhook source, then the record is skipped."""
    world = World(source="generic")
    world.cheque()

    assert world.handle().reason == pb.NO_PAYMENTS_BACK
    assert world.stripe_built == 0


# --- duplicates, changes, removals ---------------------------------------------------------------------


def test_a_duplicate_notification_calls_stripe_no_more() -> None:
    """Given the cheque's event was handled, when it (or a poll of the same version) comes again,
    then Stripe is neither read nor written again."""
    world = World()
    world.cheque()
    world.handle()
    reads = world.stripe.reads

    assert world.handle().outcome is Outcome.UNCHANGED
    assert world.handle(operation="poll").outcome is Outcome.UNCHANGED
    assert world.stripe.effects == [("pay", "in_1")]
    assert world.stripe.reads == reads


def test_a_memo_edited_after_it_reached_stripe_only_stores_the_new_version() -> None:
    """Given a synced cheque edited in the ledger (new version, same amount), then nothing is sent."""
    world = World()
    world.cheque()
    world.handle()
    world.cheque(version="1")

    assert world.handle(operation="update").outcome is Outcome.UNCHANGED
    assert world.record().ledger_version == "1"
    assert world.stripe.effects == [("pay", "in_1")]


def test_an_amount_changed_after_it_reached_stripe_parks_once_and_keeps_the_money_held() -> None:
    """Given a synced 40.00 cheque changed to 50.00 in the ledger, then the record parks as "ledger
    payment changed after it reached Stripe" with one alert, Stripe is not written, and the 40.00
    Stripe holds stays on the invoice's record (push must keep subtracting it)."""
    world = World()
    world.cheque("40.00")
    world.handle()
    world.cheque("50.00", version="1")

    result = world.handle(operation="update")
    world.handle(operation="update")

    assert (result.outcome, result.reason) == (Outcome.PARKED, pb.CHANGED_AFTER)
    assert world.alerts.reasons == [pb.CHANGED_AFTER]
    assert "pr_1" in world.alerts.published[0][1]
    assert len(world.stripe.effects) == 2
    assert world.ledger_paid() == {RESERVATION: (4000, "done")}


def test_a_payment_moved_to_another_invoice_withdraws_the_first_record() -> None:
    """Given P1 synced against L1 and then moved in the ledger to L9 (not ours), then the L1 record
    parks as changed after it reached Stripe and the L9 one is skipped."""
    world = World()
    world.cheque()
    world.handle()
    world.ledger.invoices["L9"] = replace(world.ledger.invoices["L1"], id="L9", private_note=None)
    world.cheque(version="1", invoice="L9")

    result = world.handle(operation="update")

    outcomes = {applied.source_id: applied.outcome for applied in result.applications}
    assert outcomes == {RECORD: Outcome.PARKED, "P1:L9": Outcome.SKIPPED}


def test_a_payment_deleted_before_it_was_sent_is_skipped_and_its_reservation_released() -> None:
    """Given a cheque whose Stripe call failed (reservation pending), when the person deletes it in
    the ledger (QBO answers 610), then its record is skipped as removed before it was sent, the
    invoice holds nothing for it, nobody is alerted and Stripe was never written."""
    world = World()
    world.cheque()
    world.stripe.fail["pay"] = [(StripeUnavailable("Stripe failed (503)", status=503), False)]
    with pytest.raises(TransientError):
        world.handle()
    assert world.ledger_paid() == {RESERVATION: (10000, "pending")}
    del world.ledger.payments["P1"]

    result = world.handle(operation="delete")

    assert (result.outcome, result.reason) == (Outcome.SKIPPED, pb.REMOVED_BEFORE)
    assert world.record().status is SyncStatus.SKIPPED
    assert world.ledger_paid() == {}
    assert world.alerts.published == []
    assert world.stripe.effects == []


def test_a_payment_deleted_after_it_reached_stripe_parks_for_a_person() -> None:
    """Given a synced cheque then voided in the ledger, then its record parks as "ledger payment
    removed after it reached Stripe", naming the Stripe invoice, and the money stays held."""
    world = World()
    world.cheque()
    world.handle()
    world.ledger.payments["P1"] = replace(world.ledger.payments["P1"], voided=True, version="1")

    result = world.handle(operation="void")

    assert result.reason == pb.REMOVED_AFTER
    assert "in_1" in world.alerts.published[0][1]
    assert world.ledger_paid() == {RESERVATION: (10000, "done")}


def test_a_deleted_payment_that_was_never_seen_does_nothing() -> None:
    """Given a delete event for a payment with no records, then nothing is written."""
    world = World()

    assert world.handle("P7", operation="delete").outcome is Outcome.SKIPPED
    assert world.state.saves == []


# --- failures and retries (3.7) -------------------------------------------------------------------------


def test_a_5xx_that_stripe_did_not_act_on_retries_with_a_new_generation_key() -> None:
    """Given pay answers a 500 and a re-read shows the invoice still open, then the message goes back
    (transient), the record's generation moves to 1, and the retry pays under a new key once."""
    world = World()
    world.cheque()
    world.stripe.fail["pay"] = [(StripeUnavailable("Stripe failed (500)", status=500), False)]

    with pytest.raises(TransientError):
        world.handle()
    first_key = world.stripe.keys[0][1]
    assert world.record().attempts_generation == 1

    assert world.handle().outcome is Outcome.SYNCED
    assert world.stripe.keys[1][0] == "pay"
    assert world.stripe.keys[1][1] != first_key
    assert world.record().idempotency_key == world.stripe.keys[1][1]
    assert world.stripe.effects == [("pay", "in_1")]


def test_a_5xx_after_stripe_acted_is_synced_from_the_re_read_with_no_new_call() -> None:
    """Given attach takes the payment record and then answers a 500, then the re-read shows our pr_
    attached: the record is synced at once, the key's generation unchanged, no call repeated."""
    world = World()
    world.cheque("40.00")
    world.stripe.fail["attach"] = [(StripeUnavailable("Stripe failed (500)", status=500), True)]

    assert world.handle().outcome is Outcome.SYNCED
    assert world.record().attempts_generation == 0
    assert world.stripe.effects == [("report", "pr_1"), ("attach", "pr_1")]
    assert len(world.stripe.keys) == 2


@pytest.mark.parametrize("amount", ["100.00", "40.00"])
def test_a_crash_after_stripe_acted_is_synced_on_the_retry_with_no_new_call(amount: str) -> None:
    """Given the worker dies after Stripe took the money but before the record said synced, when the
    message comes back, then the re-read shows it done (our pr_ attached, or in_1 paid out of band)
    and the record is synced with no further Stripe write."""
    world = World()
    world.cheque(amount)

    def crash(record: SyncRecord) -> None:
        if record.kind == "ledger_payment" and record.status is SyncStatus.SYNCED:
            raise RuntimeError("Lambda timed out")

    world.state.before_save = crash
    with pytest.raises(RuntimeError):
        world.handle()
    world.state.before_save = None
    keys = list(world.stripe.keys)

    assert world.handle().outcome is Outcome.SYNCED
    assert world.stripe.keys == keys
    assert world.record().status is SyncStatus.SYNCED
    assert world.ledger_paid() == {RESERVATION: (int(Decimal(amount) * 100), "done")}


def test_a_crash_between_report_and_attach_attaches_the_recorded_payment_record() -> None:
    """Given the worker dies after the payment record was reported and named on the record, then the
    retry only attaches that pr_: no second payment record."""
    world = World()
    world.cheque("40.00")
    world.stripe.fail["attach"] = [(RuntimeError("Lambda timed out"), False)]  # type: ignore[list-item]

    with pytest.raises(RuntimeError):
        world.handle()
    assert world.handle().outcome is Outcome.SYNCED

    assert world.stripe.effects == [("report", "pr_1"), ("attach", "pr_1")]


def test_stripe_failing_a_fourth_time_parks_the_record_and_acknowledges_the_message() -> None:
    """Given Stripe answers 503 four times, then the first three go back to the queue and the fourth
    parks the record failed as "could not update Stripe" with one alert, releases the reservation and
    raises nothing (before SQS's fifth receive would dead-letter the message)."""
    world = World()
    world.cheque()
    world.stripe.fail["pay"] = [(StripeUnavailable("Stripe failed (503)", status=503), False)] * 4

    for _ in range(3):
        with pytest.raises(TransientError):
            world.handle()
    result = world.handle()

    assert (result.outcome, result.reason) == (Outcome.PARKED, pb.GAVE_UP)
    assert world.record().status is SyncStatus.FAILED
    assert world.alerts.reasons == [pb.GAVE_UP]
    assert world.ledger_paid() == {}
    assert world.stripe.effects == []


def test_a_redrive_after_giving_up_gets_fresh_tries() -> None:
    """Given a record parked after four failures, when an operator re-drives it and Stripe is back,
    then the invoice is paid."""
    world = World()
    world.cheque()
    world.stripe.fail["pay"] = [(StripeUnavailable("Stripe failed (503)", status=503), False)] * 4
    for _ in range(3):
        with pytest.raises(TransientError):
            world.handle()
    world.handle()

    assert world.handle(operation="redrive").outcome is Outcome.SYNCED
    assert world.stripe.effects == [("pay", "in_1")]


def test_a_batch_hands_back_only_the_message_that_must_be_retried() -> None:
    """Given two cheques in one batch, the first hitting a Stripe 503, then the batch's results are
    the error for the first and a synced result for the second."""
    world = World()
    world.stripe.add_invoice("in_2", total=5000)
    world.state.put(
        SyncRecord(
            connection_id=CONNECTION,
            kind="invoice",
            source_id="in_2",
            status=SyncStatus.SYNCED,
            ledger_id="L2",
        )
    )
    world.ledger.invoices["L2"] = replace(
        world.ledger.invoices["L1"], id="L2", private_note=marker("stripe", "in_2")
    )
    world.cheque()
    world.cheque("50.00", pid="P2", invoice="L2")
    world.stripe.fail["pay"] = [(StripeUnavailable("Stripe failed (503)", status=503), False)]

    results = world.service.handle_batch([message("P1"), message("P2")])

    assert isinstance(results[0], TransientError)
    assert isinstance(results[1], pb.BackResult)
    assert results[1].outcome is Outcome.SYNCED


# --- events this worker does not act on -------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "connection"),
    [
        ({"kind": "credit_note"}, {}),
        ({"kind": "callback_verify", "verifier": "secret-code"}, {}),
        ({}, {"payments_back": False}),
    ],
)
def test_events_not_followed_are_dropped_with_a_reason_and_no_reads(
    fields: dict[str, Any], connection: dict[str, Any]
) -> None:
    """Given a credit note, a FreshBooks verification, or a connection with payments back off, then
    the event is dropped with its reason: no ledger read, no record, and a verifier never in the
    reason."""
    world = World(**connection)

    result = world.handle(**fields)

    assert result.outcome is Outcome.DROPPED
    assert result.reason
    assert "secret-code" not in result.reason
    assert world.state.saves == []


def test_a_poll_payload_is_read_without_asking_the_ledger() -> None:
    """Given a message carrying the poll's Payment element and a reader for its ledger, then the
    service reads the payment from it (the ledger is not asked for P1)."""
    world = World()
    payment = world.cheque()
    del world.ledger.payments["P1"]
    seen: list[dict[str, Any]] = []
    world.service.payload_readers["quickbooks"] = lambda element: seen.append(element) or payment

    assert world.handle(operation="poll", payload={"Id": "P1"}).outcome is Outcome.SYNCED
    assert seen == [{"Id": "P1"}]


def test_a_payment_older_than_payments_back_is_not_mirrored() -> None:
    """Given payments_back_since after the payment's last change, then it is skipped, no record."""
    world = World(payments_back_since=datetime(2026, 12, 2, tzinfo=UTC))
    world.ledger.payments["P1"] = replace(world.cheque(), updated_at=datetime(2026, 11, 30, tzinfo=UTC))

    assert world.handle().reason == pb.BEFORE_SINCE
    assert world.state.get(CONNECTION, "ledger_payment", RECORD) == (None, 0)


# --- the plan itself (pure) -----------------------------------------------------------------------------


def _invoice(**fields: Any) -> StripeInvoice:
    values: dict[str, Any] = {
        "id": "in_1",
        "status": "open",
        "currency": "USD",
        "amount_remaining": 10000,
        "amount_paid_off_stripe": 0,
        "customer": "cus_1",
        "number": "INV-1",
        "attached": frozenset(),
    }
    return StripeInvoice(**{**values, **fields})


def _record(**fields: Any) -> SyncRecord:
    return SyncRecord(connection_id=CONNECTION, kind="ledger_payment", source_id=RECORD, **fields)


def test_plan_full_partial_attach_and_done() -> None:
    """The amount due decides full or partial; a reported pr_ is attached; our pr_ attached, or our
    out-of-band pay with the money off Stripe, is done; a card payment of the invoice is not ours."""
    assert plan(_invoice(), _record(), 10000, "usd") is Step.FULL
    assert plan(_invoice(), _record(), 2500, "USD") is Step.PARTIAL
    assert plan(_invoice(), _record(stripe_object="pr_1"), 2500, "USD") is Step.ATTACH
    assert (
        plan(_invoice(attached=frozenset({"pr_1"})), _record(stripe_object="pr_1"), 2500, "USD") is Step.DONE
    )
    paid = _invoice(status="paid", amount_remaining=0, amount_paid_off_stripe=10000)
    assert plan(paid, _record(stripe_object="in_1"), 10000, "USD") is Step.DONE
    by_card = _invoice(status="paid", amount_remaining=0, amount_paid_off_stripe=0)
    with pytest.raises(pb.ParkError, match=pb.PAID_BOTH_SIDES):
        plan(by_card, _record(stripe_object="in_1"), 10000, "USD")


def test_a_fresh_intent_of_another_worker_is_waited_for_but_a_recorded_failure_is_not() -> None:
    """Given a two-minute intent timeout: a record whose intent was just written by a worker that has
    not reported back makes this delivery wait (transient, Stripe not called); once an attempt has
    recorded its failure, the next delivery goes ahead at once."""
    world = World()
    world.service.intent_timeout = timedelta(seconds=120)
    world.cheque()
    world.state.put(
        SyncRecord(
            connection_id=CONNECTION,
            kind="ledger_payment",
            source_id=RECORD,
            status=SyncStatus.PENDING,
            idempotency_key="k-in-flight",
            direction="to_source",
        )
    )

    with pytest.raises(TransientError, match="another worker"):
        world.handle()
    assert world.stripe.keys == []

    world.stripe.fail["pay"] = [(StripeUnavailable("Stripe failed (503)", status=503), False)]
    record, revision = world.state.get(CONNECTION, "ledger_payment", RECORD)
    assert record is not None
    record.last_error = "could not update Stripe: 503"
    world.state.save(record, revision)
    with pytest.raises(TransientError, match="attempt 1"):
        world.handle()
    assert world.handle().outcome is Outcome.SYNCED


def test_a_xero_invoice_event_sends_the_payments_on_it_that_are_neither_ours_nor_synced() -> None:
    """Given a Xero connection and an INVOICE event for L1, which lists cheque P1 and push's LP9
    (linked), then P1 is sent to Stripe and LP9 is not even read; an event for an invoice without
    our marker sends nothing."""
    world = World(ledger="xero")
    world.cheque()
    world.ledger.invoices["L1"] = replace(world.ledger.invoices["L1"], linked_payment_ids=("P1", "LP9"))
    world.state.link(CONNECTION, "ledger-payment:LP9", "payment#in_1:paid:100")
    world.ledger.invoices["L9"] = replace(world.ledger.invoices["L1"], id="L9", private_note=None)

    result = world.handle("L1", operation="update", kind="invoice", ledger="xero")
    stranger = world.handle("L9", operation="update", kind="invoice", ledger="xero")

    assert result.outcome is Outcome.SYNCED
    assert [a.source_id for a in result.applications] == [RECORD]
    assert world.stripe.effects == [("pay", "in_1")]
    assert (stranger.outcome, stranger.reason) == (Outcome.DROPPED, pb.NOT_FROM_SOURCE)
    assert world.handle("L1", operation="update", kind="invoice", ledger="xero").outcome is Outcome.UNCHANGED


def test_an_amount_changed_while_unsent_starts_over_with_new_keys() -> None:
    """Given a 40.00 cheque whose payment record was reported but not attached (the worker died), when
    the person corrects it to 50.00 before the retry, then a new payment record of 50.00 is reported
    under new keys and attached; the 40.00 one is left unattached (it changes no invoice)."""
    world = World()
    world.cheque("40.00")
    world.stripe.fail["attach"] = [(RuntimeError("Lambda timed out"), False)]  # type: ignore[list-item]
    with pytest.raises(RuntimeError):
        world.handle()
    world.cheque("50.00", version="1")

    assert world.handle(operation="update").outcome is Outcome.SYNCED

    assert world.stripe.effects == [("report", "pr_1"), ("report", "pr_2"), ("attach", "pr_2")]
    assert world.stripe.records["pr_2"]["amount"] == 5000
    assert world.record().stripe_object == "pr_2"
    assert world.ledger_paid() == {RESERVATION: (5000, "done")}


def test_a_retry_a_day_after_a_crash_in_report_alerts_once_that_an_orphan_is_possible() -> None:
    """Given an intent recorded more than 24 h ago by an attempt that never reported back (it may
    have died inside report_payment, and Stripe has forgotten its key), when it is re-driven, then
    one "orphan payment record possible" alert goes out and the payment still reaches Stripe."""
    world = World()
    world.cheque("40.00")
    world.state.put(
        SyncRecord(
            connection_id=CONNECTION,
            kind="ledger_payment",
            source_id=RECORD,
            status=SyncStatus.PENDING,
            idempotency_key="k-old",
            direction="to_source",
            ledger_total=4000,
        )
    )
    key = (CONNECTION, "ledger_payment", RECORD)
    stored, revision = world.state.records[key]
    world.state.records[key] = (
        stored.model_copy(update={"updated_at": stored.updated_at - timedelta(hours=25)}),
        revision,
    )

    assert world.handle(operation="redrive").outcome is Outcome.SYNCED
    assert world.alerts.reasons == [pb.ORPHAN_POSSIBLE]
    assert "ledger_payment#P1:L1" in world.alerts.published[0][1]


# --- FreshBooks callback verification (design 3.2) ---------------------------------------------------

CODE = "k3yFr0mFreshB00ks0000000000000001"


def freshbooks_world(*, state: str = "pending", code: str | None = CODE) -> tuple[World, FakeFreshBooks]:
    """A FreshBooks connection with payments back on that registered callback 7 (``codes``: the
    verifier FreshBooks issued), pending unless told otherwise."""
    world = World(ledger="freshbooks", tenant_id="ACCT1")
    ledger = FakeFreshBooks()
    world.ledger = ledger
    if code is not None:
        ledger.codes["7"] = code
    world.state.callbacks[(CONNECTION, "7")] = PendingCallback("7", state, "payment", 2_000_000_000)  # type: ignore[arg-type]
    return world, ledger


def verify(world: World, verifier: str = CODE, callback_id: str = "7") -> pb.BackResult:
    return world.service.handle(
        message(
            callback_id,
            "verify",
            ledger="freshbooks",
            kind="callback_verify",
            verifier=verifier,
            event_id=None,
        )
    )


def test_a_verify_for_a_pending_callback_sends_the_code_back_then_keeps_it_as_the_key() -> None:
    """Given callback 7 pending, when its verify is handled, then FreshBooks is sent the code (as a
    SecretStr) once, the code becomes the connection's first ledger webhook key, and the
    registration is verified; no record is written and nobody is alerted."""
    world, ledger = freshbooks_world()

    result = verify(world)

    assert (result.outcome, result.object_id) == (Outcome.VERIFIED, "7")
    assert ledger.verified == ["7"]
    assert len(ledger.sent) == 1 and isinstance(ledger.sent[0], SecretStr)
    assert world.keys.keys == {CONNECTION: [CODE]}
    assert world.state.callbacks[(CONNECTION, "7")].state == "verified"
    assert world.state.saves == []
    assert world.alerts.published == []


@pytest.mark.parametrize(
    ("state", "callback_id"),
    [("pending", "8"), ("verified", "7")],
    ids=["unknown callback", "verified already"],
)
def test_a_verify_without_a_pending_registration_is_dropped_before_any_call(
    state: str, callback_id: str
) -> None:
    """Given a verify for a callback never registered here (a forgery) or one verified already,
    then it is dropped: FreshBooks is not called, no key is stored, nothing changes."""
    world, ledger = freshbooks_world(state=state)
    ledger.codes[callback_id] = CODE

    result = verify(world, callback_id=callback_id)

    assert result.outcome is Outcome.DROPPED
    assert ledger.sent == []
    assert world.keys.keys == {}
    assert world.state.callbacks[(CONNECTION, "7")].state == state


@pytest.mark.parametrize("sent", ["not-the-code", CODE], ids=["wrong code", "callback gone"])
def test_a_verifier_freshbooks_refuses_is_dropped_never_kept_and_never_logged(
    sent: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Given callback 7 pending, when a verify carries a code FreshBooks refuses (400 errno 1004),
    or FreshBooks no longer has the callback (404), then the message is dropped with a reason (not
    retried), no key is stored, the registration stays pending, and the code is in no log line
    and not in the reason."""
    world, ledger = freshbooks_world(code=None if sent == CODE else CODE)

    result = verify(world, verifier=sent)

    assert (result.outcome, result.reason) == (Outcome.DROPPED, "ledger refused the verifier")
    assert len(ledger.sent) == 1
    assert world.keys.keys == {}
    assert world.state.callbacks[(CONNECTION, "7")].state == "pending"
    assert sent not in caplog.text
    assert sent not in (result.reason or "")


def test_a_transient_failure_is_raised_so_the_verify_comes_back_and_then_completes() -> None:
    """Given callback 7 pending and FreshBooks answering 503 once, then the handling raises (the
    message goes back to the queue) with no key stored and the registration still pending; the
    retry verifies it and keeps the code."""
    world, ledger = freshbooks_world()
    ledger.fail.append(LedgerUnavailable("FreshBooks answered HTTP 503", code="503"))

    with pytest.raises(LedgerUnavailable):
        verify(world)
    assert world.keys.keys == {}
    assert world.state.callbacks[(CONNECTION, "7")].state == "pending"

    assert verify(world).outcome is Outcome.VERIFIED
    assert world.keys.keys == {CONNECTION: [CODE]}


def test_a_key_that_cannot_be_stored_leaves_the_registration_pending_for_the_retry() -> None:
    """Given FreshBooks accepts the code but the secret's put fails (Secrets Manager throttles),
    then the handling raises and the registration is not marked verified, so the retry sends the
    code again (FreshBooks takes the right one twice) and keeps it."""
    world, ledger = freshbooks_world()
    world.keys.fail.append(TransientError("Secrets Manager throttled"))

    with pytest.raises(TransientError):
        verify(world)
    assert world.state.callbacks[(CONNECTION, "7")].state == "pending"

    assert verify(world).outcome is Outcome.VERIFIED
    assert ledger.verified == ["7", "7"]
    assert world.keys.keys == {CONNECTION: [CODE]}
    assert world.state.callbacks[(CONNECTION, "7")].state == "verified"


def test_a_revoked_authorisation_drops_the_verify_with_one_connection_alert() -> None:
    """Given FreshBooks refuses the connection's token for good, then the verify is dropped (a
    retry cannot help; `connect` again resends the code), the connection is alerted once, and no
    key is stored."""
    world, ledger = freshbooks_world()
    ledger.fail.append(TokenRevoked("FreshBooks refused the refresh token", code="invalid_grant"))

    result = verify(world)

    assert result.outcome is Outcome.DROPPED
    assert world.alerts.reasons == ["ledger authorisation revoked"]
    assert world.keys.keys == {}
