"""The Xero payments poll (``sync.xero_poll.XeroPaymentPoller``, design two-way 3.3) on fakes: what
it sends to the ledger events queue, where its cursor goes, and when it stops.

``FakeXero`` answers ``list_ledger_payments`` as the adapter over Xero does: ``If-Modified-Since``
one second early at second precision (Xero compares it strictly, as the sandbox does), then the
payments older than ``since`` dropped, ``order=UpdatedDateUTC ASC`` and pages of ``page_size``.
The elements are Xero Payment elements read by the real pure reader
(``ledgers.xero.payloads.ledger_payment``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from invoice_sync.errors import LedgerUnavailable, TokenRevoked
from invoice_sync.ledgers.port import LedgerPayment, marker
from invoice_sync.ledgers.xero import payloads
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.models.sync import PollCursor
from invoice_sync.store.queue import LedgerEventsSendFailed
from invoice_sync.store.sync_state import ConcurrentUpdate
from invoice_sync.sync.xero_poll import (
    MAX_PAYLOAD_BYTES,
    Budget,
    PollOutcome,
    XeroPaymentPoller,
)

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # payments_back_since of the connections
NOW = datetime(2026, 12, 2, 16, 0, tzinfo=UTC)


def _ms(moment: datetime) -> str:
    return f"/Date({int(moment.timestamp() * 1000)}+0000)/"


def element(
    payment_id: str,
    updated: datetime,
    *,
    payment_type: str = "ACCRECPAYMENT",
    reference: str = "cheque",
    status: str = "AUTHORISED",
    padding: int = 0,
) -> dict[str, Any]:
    """A Payment element as Xero serves it (``xero_accounting.yaml`` Payment)."""
    paid: dict[str, Any] = (
        {"CreditNote": {"CreditNoteID": f"cn-{payment_id}", "CurrencyCode": "USD"}}
        if payment_type == "ARCREDITPAYMENT"
        else {"Invoice": {"InvoiceID": f"inv-{payment_id}", "InvoiceNumber": "INV-1", "CurrencyCode": "USD"}}
    )
    found: dict[str, Any] = {
        "PaymentID": payment_id,
        "PaymentType": payment_type,
        "Status": status,
        **paid,
        "Account": {"Code": "090", "Name": "Business Bank"},
        "Date": _ms(updated.replace(hour=0, minute=0, second=0, microsecond=0)),
        "Amount": Decimal("10.00"),
        "Reference": reference,
        "UpdatedDateUTC": _ms(updated),
    }
    if padding:
        found["Narration"] = "x" * padding
    return found


def _updated(found: dict[str, Any]) -> datetime:
    moment = payloads.moment(found["UpdatedDateUTC"])
    assert moment is not None
    return moment


class FakeXeroParsed:
    """``list_ledger_payments`` only: the adapter as it is, which hands out no elements."""

    def __init__(self, elements: list[dict[str, Any]] | None = None, page_size: int = 100) -> None:
        self.elements = list(elements or [])
        self.page_size = page_size
        self.calls: list[tuple[datetime, int]] = []
        self.fail_on_call: dict[int, Exception] = {}  # the n-th call (1-based) raises
        self.after_call: Callable[[int], None] | None = None

    def _rows(self, since: datetime, page: int) -> tuple[list[dict[str, Any]], bool]:
        self.calls.append((since, page))
        failure = self.fail_on_call.get(len(self.calls))
        if failure is not None:
            raise failure
        header = (since - timedelta(seconds=1)).replace(microsecond=0)
        ordered = sorted(
            (e for e in self.elements if _updated(e) > header), key=_updated
        )  # Xero: order=UpdatedDateUTC ASC, ties in their order
        rows = ordered[(page - 1) * self.page_size : page * self.page_size]
        floor = since.replace(microsecond=0)
        kept = [copy.deepcopy(e) for e in rows if _updated(e) >= floor]  # what Xero served
        if self.after_call is not None:
            self.after_call(len(self.calls))
        return kept, len(rows) >= self.page_size

    def list_ledger_payments(self, since: datetime, page: int) -> tuple[list[LedgerPayment], bool]:
        rows, more = self._rows(since, page)
        return [payloads.ledger_payment(e) for e in rows], more


class FakeXero(FakeXeroParsed):
    """A Xero adapter that also hands out the Payment elements it lists."""

    def list_ledger_payment_elements(self, since: datetime, page: int) -> tuple[list[dict[str, Any]], bool]:
        return self._rows(since, page)


class FakeState:
    def __init__(self) -> None:
        self.cursors: dict[str, PollCursor] = {}
        self.locks: dict[str, str] = {}
        self.alerted: set[str] = set()
        self.released: list[str] = []
        self.before_save: Callable[[str], None] | None = None

    def poll_cursor(self, connection_id: str, name: str = "xero-payments") -> PollCursor | None:
        return self.cursors.get(connection_id)

    def save_poll_cursor(
        self, connection_id: str, cursor: PollCursor, expected_revision: int, name: str = "xero-payments"
    ) -> PollCursor:
        if self.before_save is not None:
            hook, self.before_save = self.before_save, None
            hook(connection_id)
        current = self.cursors.get(connection_id)
        if (current.revision if current else 0) != expected_revision:
            raise ConcurrentUpdate(f"the {name} cursor of {connection_id} was saved by another poll")
        saved = cursor.model_copy(update={"revision": expected_revision + 1})
        self.cursors[connection_id] = saved
        return saved

    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool:
        if self.locks.get(name, owner) != owner:
            return False
        self.locks[name] = owner
        return True

    def release_lock(self, name: str, owner: str) -> None:
        if self.locks.get(name) == owner:
            del self.locks[name]
            self.released.append(name)

    def alert_sent(self, key: str) -> bool:
        return key in self.alerted

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None:
        self.alerted.add(key)


class FakeConnections:
    def __init__(self, *connections: Connection) -> None:
        self.all = list(connections)

    def connections(self) -> list[Connection]:
        return list(self.all)

    def mappings(self, connection_id: str) -> Mappings | None:
        found = [c for c in self.all if c.connection_id == connection_id]
        return Mappings(connection=found[0]) if found else None


class FakeQueue:
    def __init__(self) -> None:
        self.sent: list[LedgerEventMessage] = []
        self.refuse_call: int | None = None  # the n-th send_batch (1-based) is refused
        self.calls = 0

    def send_batch(self, messages: list[LedgerEventMessage]) -> int:
        self.calls += 1
        if self.calls == self.refuse_call:
            raise LedgerEventsSendFailed([(messages[0], "ServiceUnavailable: try again")])
        # As SQS would carry them: the queue body, read back.
        self.sent.extend(LedgerEventMessage.from_queue_body(m.to_queue_body()) for m in messages)
        return len(messages)

    def ids(self) -> set[str]:
        return {m.object_id for m in self.sent}


class FakeAlerts:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, object]]] = []

    def publish(self, subject: str, text: str, details: dict[str, object]) -> None:
        self.published.append((subject, text, details))


def xero_connection(connection_id: str = "acme", **fields: Any) -> Connection:
    values: dict[str, Any] = {
        "connection_id": connection_id,
        "ledger": "xero",
        "tenant_id": f"tenant-{connection_id}",
        "payments_back": True,
        "payments_back_since": T0,
        **fields,
    }
    return Connection.model_validate(values)


class Rig:
    """A poller on fakes, one fake Xero per connection."""

    def __init__(self, *connections: Connection, ledgers: dict[str, FakeXeroParsed] | None = None) -> None:
        self.state = FakeState()
        self.connections = FakeConnections(*(connections or (xero_connection(),)))
        self.queue = FakeQueue()
        self.alerts = FakeAlerts()
        self.ledgers = ledgers or {c.connection_id: FakeXero() for c in self.connections.all}
        self.budgets: dict[str, Budget] = {}
        self.used: list[str] = []
        self.now = NOW

    def ledger_for(self, mappings: Mappings) -> Any:
        self.used.append(mappings.connection.connection_id)
        return self.ledgers[mappings.connection.connection_id]

    def poller(self, **options: Any) -> XeroPaymentPoller:
        return XeroPaymentPoller(
            state=self.state,
            connections=self.connections,
            alerts=self.alerts,
            ledger_for=self.ledger_for,
            queue=self.queue,
            budget=self.budgets.get,
            reader=payloads.ledger_payment,
            clock=lambda: self.now,
            **options,
        )


def _series(
    count: int, start: datetime = T0 + timedelta(hours=1), step: timedelta = timedelta(seconds=7)
) -> list[dict[str, Any]]:
    return [element(f"P{i:03d}", start + i * step) for i in range(count)]


# --- paging and the cursor ----------------------------------------------------------------------


def test_pages_are_read_until_a_short_page_and_every_payment_is_sent_with_its_element() -> None:
    """Given 250 payments a person recorded since payments back was turned on, when the poll runs,
    then it reads full pages until a short one, sends every payment once at least as a poll
    message carrying its Payment element, and saves the cursor at the newest UpdatedDateUTC."""
    rig = Rig()
    elements = _series(250)
    rig.ledgers["acme"].elements = elements

    summary = rig.poller().run()

    (poll,) = summary.connections
    assert poll.outcome is PollOutcome.POLLED
    assert rig.queue.ids() == {e["PaymentID"] for e in elements}
    by_id = {m.object_id: m for m in rig.queue.sent}
    # What the worker's reader makes of the payload, after the queue: the payment Xero listed.
    payload = by_id["P007"].payload
    assert payload is not None and payload["PaymentID"] == "P007"
    assert payloads.ledger_payment(payload) == payloads.ledger_payment(elements[7])
    assert (by_id["P007"].kind, by_id["P007"].operation, by_id["P007"].ledger) == ("payment", "poll", "xero")
    assert by_id["P007"].changed_at == _updated(elements[7])
    assert rig.state.cursors["acme"].since == _updated(elements[-1])
    assert rig.state.cursors["acme"].last_count == poll.sent
    assert poll.pages == 3 and len(rig.ledgers["acme"].calls) == 3
    assert rig.state.released == ["poll-xero#acme"]


def test_the_next_poll_overlaps_one_second_and_finds_a_payment_written_in_the_cursors_second() -> None:
    """Given a poll that read P1 at 10:00:00.400, when a payment P2 stamped 10:00:00.900 (the same
    second: Xero's If-Modified-Since has second precision) is recorded after it, then the next
    poll sends P2 (and P1 again: a duplicate the worker's version guard absorbs), nothing older."""
    rig = Rig()
    at = datetime(2026, 12, 1, 10, 0, 0, 400_000, tzinfo=UTC)
    older = element("P0", at - timedelta(seconds=5))
    rig.ledgers["acme"].elements = [older, element("P1", at)]
    rig.poller().run()
    rig.queue.sent.clear()

    rig.ledgers["acme"].elements.append(element("P2", at + timedelta(milliseconds=500)))
    rig.poller().run()

    assert [m.object_id for m in rig.queue.sent] == ["P1", "P2"]
    assert rig.state.cursors["acme"].since == at + timedelta(milliseconds=500)
    ((since, _),) = rig.ledgers["acme"].calls[-1:]
    assert since == at


def test_the_first_poll_starts_at_payments_back_since_and_never_reaches_back_further() -> None:
    """Given payments recorded before and after the connection's payments_back_since, when the
    first poll runs, then only the later ones are sent: old ledger history is not mirrored."""
    rig = Rig()
    rig.ledgers["acme"].elements = [
        element("OLD", T0 - timedelta(days=30)),
        element("NEW", T0 + timedelta(minutes=5)),
    ]

    rig.poller().run()

    assert rig.queue.ids() == {"NEW"}
    assert rig.ledgers["acme"].calls[0][0] == T0


def test_without_payments_back_since_the_first_poll_starts_now_and_keeps_that_start() -> None:
    """Given a connection with payments back on but no payments_back_since, when the first poll
    runs and Xero refuses its token, then nothing older than that run is read, its start is saved
    as the cursor all the same, and the poll after the reconnection starts there (a payment made
    in between is sent, not lost to a later "now")."""
    rig = Rig(xero_connection(payments_back_since=None))
    xero = rig.ledgers["acme"]
    xero.elements = [element("OLD", NOW - timedelta(days=2))]
    xero.fail_on_call[1] = TokenRevoked("invalid_grant")

    (first,) = rig.poller().run().connections
    assert first.outcome is PollOutcome.FAILED
    assert rig.state.cursors["acme"].since == NOW

    xero.elements.append(element("BETWEEN", NOW + timedelta(minutes=20)))
    rig.now = NOW + timedelta(hours=1)
    (second,) = rig.poller().run().connections

    assert second.outcome is PollOutcome.POLLED
    assert rig.queue.ids() == {"BETWEEN"}
    assert xero.calls[-1][0] == NOW


def test_a_payment_edited_while_the_poll_pages_is_not_lost() -> None:
    """Given 150 payments, when one already read on the first page is edited in Xero before the
    next page is asked for (it moves to the end of Xero's order and the others slide forward by
    one), then every payment is still sent: the poll goes on from the newest moment read rather
    than asking for page 2, where the payment that slid onto page 1 would be missed while the
    cursor moved past it."""
    rig = Rig()
    xero = rig.ledgers["acme"]
    xero.elements = _series(150)

    def edit(call: int) -> None:
        if call == 1:
            edited = xero.elements[5]
            edited["UpdatedDateUTC"] = _ms(_updated(xero.elements[-1]) + timedelta(minutes=1))

    xero.after_call = edit

    rig.poller().run()

    assert rig.queue.ids() == {f"P{i:03d}" for i in range(150)}


def test_a_whole_page_within_one_second_goes_on_to_the_next_page_of_that_second() -> None:
    """Given 150 payments all stamped within one second (a bank-feed batch), when the poll runs,
    then it does not ask for the same 100 for ever: it reads page 2 of that second and sends all
    150, and the cursor is the newest of them."""
    rig = Rig()
    at = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
    rig.ledgers["acme"].elements = [
        element(f"B{i:03d}", at + timedelta(milliseconds=i * 5)) for i in range(150)
    ]

    (poll,) = rig.poller().run().connections

    assert rig.queue.ids() == {f"B{i:03d}" for i in range(150)}
    assert [page for _, page in rig.ledgers["acme"].calls] == [1, 1, 2]
    assert poll.cursor == at + timedelta(milliseconds=149 * 5)


# --- what is sent -------------------------------------------------------------------------------


def test_only_payments_a_person_recorded_on_an_invoice_are_sent() -> None:
    """Given an ACCRECPAYMENT, a deleted one, a credit-note payment, an overpayment, a
    prepayment and the payment push booked (invoice-sync's marker in its Reference), when the poll
    runs, then the ACCRECPAYMENT and the deleted one (the worker withdraws it) are sent, the rest
    counted and left, and the cursor still moves past all six."""
    rig = Rig()
    at = T0 + timedelta(hours=2)
    rig.ledgers["acme"].elements = [
        element("CHEQUE", at),
        element("DELETED", at + timedelta(seconds=1), status="DELETED"),
        element("CREDIT", at + timedelta(seconds=2), payment_type="ARCREDITPAYMENT"),
        element("OVER", at + timedelta(seconds=3), payment_type="AROVERPAYMENTPAYMENT"),
        element("PRE", at + timedelta(seconds=4), payment_type="ARPREPAYMENTPAYMENT"),
        element("PUSHED", at + timedelta(seconds=5), reference=marker("stripe", "in_1Card")),
    ]

    (poll,) = rig.poller().run().connections

    assert rig.queue.ids() == {"CHEQUE", "DELETED"}
    assert (poll.read, poll.sent, poll.skipped, poll.ours) == (6, 2, 3, 1)
    assert rig.state.cursors["acme"].since == at + timedelta(seconds=5)


def test_a_payment_element_above_8_kib_travels_without_its_payload() -> None:
    """Given a payment whose element is larger than 8 KiB and a small one, then both are sent,
    the small one with its element and the large one without (the worker reads it itself)."""
    rig = Rig()
    at = T0 + timedelta(hours=3)
    rig.ledgers["acme"].elements = [
        element("SMALL", at),
        element("BIG", at + timedelta(seconds=1), padding=MAX_PAYLOAD_BYTES),
    ]

    rig.poller().run()

    by_id = {m.object_id: m for m in rig.queue.sent}
    assert by_id["SMALL"].payload is not None
    assert by_id["BIG"].payload is None


def test_with_an_adapter_that_hands_out_no_elements_the_messages_carry_none() -> None:
    """Given the adapter as it is today (list_ledger_payments only), then the ACCRECPAYMENTs are
    still told from the rest (only they apply money to an invoice) and sent without a payload."""
    rig = Rig(ledgers={"acme": FakeXeroParsed()})
    at = T0 + timedelta(hours=4)
    rig.ledgers["acme"].elements = [
        element("CHEQUE", at),
        element("CREDIT", at + timedelta(seconds=1), payment_type="ARCREDITPAYMENT"),
    ]

    rig.poller().run()

    assert [(m.object_id, m.payload) for m in rig.queue.sent] == [("CHEQUE", None)]


# --- stopping early -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "why"),
    [(Budget(minute=10, day=4000), "this minute"), (Budget(minute=50, day=500), "today")],
)
def test_the_poll_stops_when_xero_says_only_the_reserve_for_push_is_left(budget: Budget, why: str) -> None:
    """Given 250 payments and Xero saying after the first page that only 10 calls are left this
    minute (or 500 today), then the poll reads no second page, sends the first page's payments,
    moves the cursor to the newest of them only, and the next poll goes on from there."""
    rig = Rig()
    elements = _series(250)
    rig.ledgers["acme"].elements = elements
    rig.budgets["acme"] = budget

    (poll,) = rig.poller().run().connections

    assert poll.outcome is PollOutcome.STOPPED and why in (poll.reason or "")
    assert poll.pages == 1
    assert rig.queue.ids() == {e["PaymentID"] for e in elements[:100]}
    assert rig.state.cursors["acme"].since == _updated(elements[99])

    del rig.budgets["acme"]
    rig.poller().run()
    assert rig.queue.ids() == {e["PaymentID"] for e in elements}


def test_the_poll_stops_when_the_invocation_is_about_to_end() -> None:
    """Given 250 payments and 5 s left after the first page, then no second page is read and the
    cursor is the first page's newest."""
    rig = Rig()
    elements = _series(250)
    rig.ledgers["acme"].elements = elements
    left = iter([30.0, 5.0])

    (poll,) = rig.poller().run(time_left=lambda: next(left)).connections

    assert (poll.outcome, poll.pages) == (PollOutcome.STOPPED, 1)
    assert rig.state.cursors["acme"].since == _updated(elements[99])


def test_a_queue_refusal_leaves_the_cursor_at_the_last_page_sent() -> None:
    """Given 250 payments, when the queue refuses the second page's messages, then the cursor is
    the newest of the first page (which was sent), never past a payment that was not, and the
    poll reports the connection failed without alerting (the next run resumes)."""
    rig = Rig()
    elements = _series(250)
    rig.ledgers["acme"].elements = elements
    rig.queue.refuse_call = 2

    (poll,) = rig.poller().run().connections

    assert poll.outcome is PollOutcome.FAILED
    assert rig.state.cursors["acme"].since == _updated(elements[99])
    assert rig.alerts.published == []


def test_xero_failing_mid_poll_keeps_what_was_sent() -> None:
    """Given 250 payments, when Xero answers the second page with a 503, then the first page's
    payments are sent and the cursor is their newest."""
    rig = Rig()
    elements = _series(250)
    rig.ledgers["acme"].elements = elements
    rig.ledgers["acme"].fail_on_call[2] = LedgerUnavailable("Xero answered 503")

    (poll,) = rig.poller().run().connections

    assert (poll.outcome, poll.sent) == (PollOutcome.FAILED, 100)
    assert rig.state.cursors["acme"].since == _updated(elements[99])


# --- two polls at once ---------------------------------------------------------------------------


def test_a_cursor_saved_by_a_concurrent_poll_stands_and_nothing_is_lost() -> None:
    """Given a poll that sent its payments, when another poll saves the cursor first (a lease
    that ran out), then this poll's save fails on the revision, its messages stay sent, and the
    other poll's cursor is kept, not overwritten."""
    rig = Rig()
    rig.state.cursors["acme"] = PollCursor(since=T0, revision=3)
    rig.ledgers["acme"].elements = _series(5)
    other = PollCursor(since=T0 + timedelta(minutes=30), revision=4)

    def concurrent(connection_id: str) -> None:
        rig.state.cursors[connection_id] = other

    rig.state.before_save = concurrent

    (poll,) = rig.poller().run().connections

    assert poll.outcome is PollOutcome.CONFLICT and poll.cursor is None
    assert rig.queue.ids() == {f"P{i:03d}" for i in range(5)}
    assert rig.state.cursors["acme"] == other


def test_a_connection_whose_lease_is_held_is_not_read() -> None:
    """Given another poll holding the connection's lease, then this run reads nothing there."""
    rig = Rig()
    rig.state.locks["poll-xero#acme"] = "someone-else"
    rig.ledgers["acme"].elements = _series(3)

    (poll,) = rig.poller().run().connections

    assert poll.outcome is PollOutcome.BUSY
    assert rig.ledgers["acme"].calls == [] and rig.queue.sent == []


# --- connections --------------------------------------------------------------------------------


def test_a_revoked_connection_alerts_once_a_day_and_the_others_are_still_polled() -> None:
    """Given three Xero connections, the first with its token revoked and the second failing
    with an unexpected error, when the poll runs twice, then the third's payments are sent both
    times, the revoked one alerts once (under the worker's per-connection key), the other is
    reported failed with no alert, and the summary counts two failures."""
    connections = (xero_connection("broken"), xero_connection("buggy"), xero_connection("fine"))
    rig = Rig(*connections, ledgers={c.connection_id: FakeXero() for c in connections})
    rig.ledgers["broken"].fail_on_call = {1: TokenRevoked("invalid_grant"), 2: TokenRevoked("invalid_grant")}
    rig.ledgers["buggy"].fail_on_call = {1: RuntimeError("boom")}
    rig.ledgers["fine"].elements = _series(2)

    summary = rig.poller().run()
    rig.poller().run()

    outcomes = {p.connection_id: p.outcome for p in summary.connections}
    assert outcomes == {"broken": PollOutcome.FAILED, "buggy": PollOutcome.FAILED, "fine": PollOutcome.POLLED}
    assert summary.as_dict()["failed"] == 2
    assert rig.queue.ids() == {"P000", "P001"}
    assert len(rig.alerts.published) == 1
    subject, _, details = rig.alerts.published[0]
    assert "broken" in subject and details["reason"] == "ledger authorisation revoked"
    assert rig.state.alerted == {"broken#ledger authorisation revoked"}


def test_only_active_xero_connections_with_payments_back_on_are_polled() -> None:
    """Given a QuickBooks connection, a Xero one with payments back off, an inactive one and one
    to poll, then only the last is read."""
    connections = (
        Connection(connection_id="qbo", ledger="quickbooks", tenant_id="1", payments_back=True),
        xero_connection("off", payments_back=False),
        xero_connection("paused", active=False),
        xero_connection("polled"),
    )
    rig = Rig(*connections, ledgers={c.connection_id: FakeXero() for c in connections})

    summary = rig.poller().run()

    assert [p.connection_id for p in summary.connections] == ["polled"]
    assert rig.used == ["polled"]


def test_the_connections_polled_longest_ago_go_first_so_a_short_run_starves_none() -> None:
    """Given three connections, when a run has time for one connection only, then it polls the
    one never polled, and each following run the one polled longest ago: all three within three
    runs, not the first of the directory every time."""
    connections = (xero_connection("aa"), xero_connection("bb"), xero_connection("cc"))
    rig = Rig(*connections, ledgers={c.connection_id: FakeXero() for c in connections})
    polled: list[str] = []
    for run in range(3):
        rig.now = NOW + timedelta(minutes=15 * run)
        left = iter([30.0, 1.0, 1.0])  # time for the first connection of the run only
        summary = rig.poller().run(time_left=lambda left=left: next(left))
        assert [p.outcome for p in summary.connections].count(PollOutcome.STOPPED) == 2
        polled += [p.connection_id for p in summary.connections if p.outcome is PollOutcome.POLLED]

    assert polled == ["aa", "bb", "cc"]
