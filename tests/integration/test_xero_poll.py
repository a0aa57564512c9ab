"""The Xero payments poll (design two-way 3.3) against the Xero sandbox over real HTTP, with the
adapter built as production builds it (``LedgerRegistry``), the SyncState store, the connection
directory and the ledger events queue on moto (``mock_aws``), and the poll built by the wiring's
own recipe (``build_xero_poller``: Xero's X-MinLimit-Remaining / X-DayLimit-Remaining as read by
the adapter's plumbing are its budget).

The sandbox runs on a clock of the test's (``Clock``): each payment a person records is stamped a
moment later, and Xero's per-minute window moves only when the test says a minute went by.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws

from invoice_sync.ledgers.port import InvoiceDraft, LedgerPort, LineDraft, marker
from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.ledgers.xero import payloads
from invoice_sync.models.mapping import Connection, Mappings
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.settings import Settings
from invoice_sync.store.mappings import MappingsStore
from invoice_sync.store.queue import LedgerEventsQueue
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.xero_poll import PollOutcome, XeroPaymentPoller
from invoice_sync.wiring.payments_back import build_xero_poller
from invoice_sync_ops.local.ledgers import LEDGERS
from invoice_sync_ops.sandboxes.xero import XeroSandbox
from invoice_sync_ops.template import StackResources, create_stack_resources
from tests.contract.conftest import CREDENTIALS, MemoryLease, MemoryVault, _vault

TENANT = "0d7f6e4c-1a2b-4c3d-8e9f-0000000000a7"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Alerts:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, object]]] = []

    def publish(self, subject: str, text: str, details: dict[str, object]) -> None:
        self.published.append((subject, text, details))


@dataclass
class Rig:
    sandbox: XeroSandbox
    clock: Clock
    resources: StackResources
    session: boto3.session.Session
    registry: LedgerRegistry
    ledger: LedgerPort
    state: SyncStateStore
    alerts: Alerts = field(default_factory=Alerts)
    invoice_id: str = ""

    def poller(self) -> XeroPaymentPoller:
        return build_xero_poller(
            state=self.state,
            mappings=MappingsStore(self.resources.mappings_table, self.session.client("dynamodb")),
            alerts=self.alerts,
            ledger_for=self.registry,
            queue=LedgerEventsQueue(self.resources.ledger_events_queue_url, self.session.client("sqs")),
        )

    def by_hand(self, count: int, step: float = 1.0, **fields: Any) -> list[dict[str, Any]]:
        """``count`` cheques of 0.01 a person records on the invoice, ``step`` seconds apart."""
        made = []
        for _ in range(count):
            self.clock.advance(step)
            made.append(
                self.sandbox.record_payment_by_hand(TENANT, self.invoice_id, Decimal("0.01"), **fields)
            )
        return made

    def queued(self) -> list[LedgerEventMessage]:
        """Everything on the ledger events queue, taken off it."""
        sqs = self.session.client("sqs")
        url = self.resources.ledger_events_queue_url
        found: list[LedgerEventMessage] = []
        while True:
            messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(LedgerEventMessage.from_queue_body(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def cursor(self) -> datetime:
        cursor = self.state.poll_cursor("acme")
        assert cursor is not None
        return cursor.since


def _updated(payment: dict[str, Any]) -> datetime:
    moment = payloads.moment(payment["UpdatedDateUTC"])
    assert moment is not None
    return moment


def _invoice(ledger: LedgerPort) -> str:
    """One authorised sales invoice of 170.00 for the cheques, made through the adapter."""
    customer = ledger.create_customer("Poll Customer", None, "USD", "poll-customer", "poll-customer-key")
    draft = InvoiceDraft(
        source_id="in_1Poll",
        customer_id=customer.id,
        number="POLL-0001",
        issued_on=date(2026, 11, 2),
        due_on=date(2026, 12, 2),
        currency="USD",
        lines=(
            LineDraft(
                item_id="CONSULT",
                description="Consulting",
                quantity=1,
                amount=Decimal("170.00"),
                tax_code="NONE",
                account="200",
            ),
        ),
        discount=Decimal(0),
        tax=Decimal(0),
        total=Decimal("170.00"),
        memo="Poll test",
        private_note=marker("stripe", "in_1Poll"),
    )
    return ledger.create_invoice(draft, "poll-invoice-key").id


@pytest.fixture
def rig(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    calls_per_minute = getattr(request, "param", 60)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    clock = Clock()
    sandbox = XeroSandbox(clock=clock, calls_per_minute=calls_per_minute)
    url = sandbox.start()
    sandbox.seed_organisation(TENANT, **CREDENTIALS)
    try:
        with mock_aws():
            session = boto3.session.Session(region_name="us-east-1")
            resources = create_stack_resources(session, prefix="poll")
            environment = {
                **dict.fromkeys(
                    ["SYNC_TABLE", "MAPPINGS_TABLE", "SYNC_QUEUE_URL", "ARCHIVE_BUCKET", "ALERTS_TOPIC_ARN"],
                    "-",
                ),
                **LEDGERS["xero"].environment(url),
                "LEDGER_MAX_ATTEMPTS": "2",
                "LEDGER_BACKOFF_SECONDS": "0.01",
            }
            vault: MemoryVault = _vault()
            registry = LedgerRegistry(Settings.from_env(environment), MemoryLease(), vault)
            connection = Connection(
                connection_id="acme",
                ledger="xero",
                tenant_id=TENANT,
                payments_back=True,
                payments_back_since=START,
            )
            MappingsStore(resources.mappings_table, session.client("dynamodb")).put_connection(connection)
            ledger = registry(Mappings(connection=connection))
            built = Rig(
                sandbox=sandbox,
                clock=clock,
                resources=resources,
                session=session,
                registry=registry,
                ledger=ledger,
                state=SyncStateStore(resources.sync_table, session.client("dynamodb")),
            )
            built.invoice_id = _invoice(ledger)
            clock.advance(61)  # the invoice's calls out of Xero's minute window
            yield built
    finally:
        sandbox.stop()


def test_pages_of_100_are_read_to_the_end_and_every_cheque_is_queued_once_at_least(rig: Rig) -> None:
    """Given 230 cheques a person recorded in Xero since payments back was turned on, when the poll
    runs, then Xero is read in pages of 100 until a short one, every cheque is on the ledger events
    queue as a poll message for the worker, and the cursor is the newest cheque's UpdatedDateUTC."""
    cheques = rig.by_hand(230)

    (poll,) = rig.poller().run().connections

    assert poll.outcome is PollOutcome.POLLED
    assert poll.pages == 3
    queued = rig.queued()
    assert {m.object_id for m in queued} == {c["PaymentID"] for c in cheques}
    assert {(m.kind, m.operation, m.ledger, m.connection_id) for m in queued} == {
        ("payment", "poll", "xero", "acme")
    }
    assert rig.cursor() == _updated(cheques[-1])
    # Each message carries the Payment element Xero listed: the worker reads it, no second GET.
    by_id = {c["PaymentID"]: c for c in cheques}
    assert all(m.payload is not None and m.payload["PaymentID"] == m.object_id for m in queued)
    assert all(
        payloads.ledger_payment(m.payload or {}).total == Decimal(str(by_id[m.object_id]["Amount"]))
        for m in queued
    )


def test_the_next_poll_reads_the_cursors_whole_second_again_and_finds_a_later_cheque_in_it(
    rig: Rig,
) -> None:
    """Given a poll that read a cheque stamped at .2 of a second, when another cheque is recorded
    at .7 of that same second (Xero's If-Modified-Since is whole seconds; the adapter sends it
    one second early), then the next poll queues it, the first again (a duplicate for the
    worker's version guard), and nothing from before that second."""
    rig.clock.now = START.timestamp() + 3600.2
    earlier = rig.by_hand(1, step=0)
    rig.clock.advance(-30)
    older = rig.by_hand(1, step=0)
    rig.clock.advance(30)
    rig.poller().run()
    rig.queued()

    rig.clock.advance(0.5)
    later = rig.by_hand(1, step=0)
    rig.poller().run()

    ids = [m.object_id for m in rig.queued()]
    assert later[0]["PaymentID"] in ids
    assert earlier[0]["PaymentID"] in ids  # the overlap: a duplicate for the worker's version guard
    assert older[0]["PaymentID"] not in ids
    assert rig.cursor() == _updated(later[0])


@pytest.mark.parametrize("rig", [12], indirect=True)
def test_the_poll_stops_at_the_reserve_for_push_and_the_cursor_moves_only_to_what_was_read(rig: Rig) -> None:
    """Given Xero allowing 12 calls a minute and 250 cheques, when the poll runs, then it stops
    once Xero says 10 are left (kept for push) after two pages, the cursor is the newest cheque of
    those pages (not Xero's newest), and after the minute the next poll queues the rest: every
    cheque reaches the queue, none is lost between the two."""
    cheques = rig.by_hand(250)

    (first,) = rig.poller().run().connections

    assert (first.outcome, first.pages) == (PollOutcome.STOPPED, 2)
    assert "this minute" in (first.reason or "")
    queued = {m.object_id for m in rig.queued()}
    read = {c["PaymentID"] for c in cheques[:199]}
    assert queued == read
    assert rig.cursor() == _updated(cheques[198])

    rig.clock.advance(61)
    (second,) = rig.poller().run().connections

    assert second.outcome is PollOutcome.POLLED
    queued |= {m.object_id for m in rig.queued()}
    assert queued == {c["PaymentID"] for c in cheques}
    assert rig.cursor() == _updated(cheques[-1])


def test_push_own_payment_and_a_cheque_recorded_before_payments_back_are_not_queued(rig: Rig) -> None:
    """Given a cheque recorded before the connection's payments_back_since and a payment carrying
    invoice-sync's marker (what push books), when the poll runs, then neither is queued and a
    person's cheque after it is."""
    rig.clock.now = START.timestamp() - 600
    (old,) = rig.by_hand(1, step=0)
    rig.clock.now = START.timestamp() + 7200
    rig.by_hand(1, reference=marker("stripe", "in_1Card"))
    (cheque,) = rig.by_hand(1)

    (poll,) = rig.poller().run().connections

    queued = {m.object_id for m in rig.queued()}
    assert queued == {cheque["PaymentID"]}
    assert old["PaymentID"] not in queued
    assert (poll.read, poll.ours) == (2, 1)  # the old cheque is not even read: the poll starts after it


def test_a_revoked_token_alerts_and_leaves_the_cursor(rig: Rig) -> None:
    """Given a cursor saved by an earlier poll and the connection's refresh token revoked in Xero,
    when the poll runs (its access token expired), then it reports the connection failed, alerts
    once that the ledger authorisation is revoked, and the cursor is where it was."""
    rig.by_hand(2)
    rig.poller().run()
    before = rig.cursor()
    rig.by_hand(1)
    rig.sandbox.revoke_refresh_token(TENANT)
    rig.sandbox.expire_access_tokens(TENANT)

    (poll,) = rig.poller().run().connections

    assert poll.outcome is PollOutcome.FAILED
    assert [details["reason"] for _, _, details in rig.alerts.published] == ["ledger authorisation revoked"]
    assert rig.cursor() == before
