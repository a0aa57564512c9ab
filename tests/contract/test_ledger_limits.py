"""The adapters as ``LedgerRegistry`` builds them keep inside their sandbox's real limits by
themselves: they wait for their own windows rather than collect 429s, and threads of one worker
share one limiter. Time is one fake clock for the sandbox and the client, moved only by the
client's sleeps, so a minute's wait costs nothing and nothing here depends on timing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest

from invoice_sync.errors import DuplicateName, LedgerThrottled
from invoice_sync.ledgers.freshbooks.adapter import FreshBooksLedger
from invoice_sync.ledgers.port import InvoiceDraft, LedgerContact, LedgerPort, LineDraft, marker
from invoice_sync.ledgers.registry import LedgerRegistry
from invoice_sync.models.mapping import Connection, LedgerKind, Mappings
from invoice_sync.settings import Settings
from invoice_sync_ops.local.ledgers import LEDGERS
from invoice_sync_ops.sandboxes.freshbooks import FreshBooksSandbox
from invoice_sync_ops.sandboxes.quickbooks import QuickBooksSandbox
from invoice_sync_ops.sandboxes.xero import XeroSandbox
from tests.contract.conftest import CREDENTIALS, MemoryLease, _vault

REALM = "4620816365000000002"
TENANT = "0d7f6e4c-1a2b-4c3d-8e9f-000000000002"
ACCOUNT = "zLimt"


class FakeTime:
    """Wall-clock seconds for the sandbox, the same seconds for the client's monotonic clock."""

    def __init__(self) -> None:
        self.now = 1_767_225_600.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def registry(kind: LedgerKind, url: str, time: FakeTime) -> LedgerRegistry:
    environment = {
        **dict.fromkeys(
            ["SYNC_TABLE", "MAPPINGS_TABLE", "SYNC_QUEUE_URL", "ARCHIVE_BUCKET", "ALERTS_TOPIC_ARN"], "-"
        ),
        **LEDGERS[kind].environment(url),
    }
    return LedgerRegistry(
        Settings.from_env(environment), MemoryLease(), _vault(), clock=time, sleep=time.sleep
    )


def adapter(registry: LedgerRegistry, kind: LedgerKind, tenant: str) -> LedgerPort:
    return registry(
        Mappings(connection=Connection(connection_id=f"limits-{kind}", ledger=kind, tenant_id=tenant))
    )


def draft(number: str, customer_id: str, item_id: str = "1", tax_code: str = "NON") -> InvoiceDraft:
    line = LineDraft(
        item_id=item_id, description="Consulting", quantity=1, amount=Decimal("10.00"), tax_code=tax_code
    )
    return InvoiceDraft(
        source_id=f"in_{number}",
        customer_id=customer_id,
        number=number,
        issued_on=date(2026, 1, 15),
        due_on=date(2026, 2, 14),
        currency="USD",
        lines=(line,),
        discount=Decimal(0),
        tax=Decimal(0),
        total=Decimal("10.00"),
        memo=None,
        private_note=marker("stripe", f"in_{number}"),
    )


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


def test_qbo_waits_for_its_batch_window_instead_of_collecting_429s(time: FakeTime) -> None:
    """Given QBO's 40 /batch requests a minute, 41 batch creates go through without one 429:
    the 41st waits (a minute, on the fake clock) for the client's batch window, as a backfill
    allowed to wait does; other calls are not held by it."""
    sandbox = QuickBooksSandbox(clock=time)
    url = sandbox.start()
    try:
        sandbox.seed_company(REALM, **CREDENTIALS)
        ledgers = registry("quickbooks", url, time)
        ledgers.set_patience(90.0)
        ledger = adapter(ledgers, "quickbooks", REALM)
        customer = ledger.create_customer("Acme Corp", None, "USD", "cus_1", "key-customer")
        outcomes = [
            ledger.create_invoices([(draft(f"L-{n:03d}", customer.id), f"key-{n}")]) for n in range(41)
        ]
        assert all(not isinstance(o[0], Exception) for o in outcomes)
        batches = [(m, p, s) for m, p, s in sandbox.request_log if p.split("?")[0].endswith("/batch")]
        assert len(batches) == 41
        assert {s for _, _, s in batches} == {200}
        assert len(sandbox.documents(REALM, "Invoice")) == 41
        assert sum(time.sleeps) >= 60.0 - 1e-6  # the 41st waited for the first to leave the window
    finally:
        sandbox.stop()


def test_an_impatient_worker_gives_the_batch_back_before_sending_it(time: FakeTime) -> None:
    """Given the push Lambda's default patience (5 s), the 41st batch in a minute is not sent:
    it is LedgerThrottled with the wait, for the queue to bring back later."""
    sandbox = QuickBooksSandbox(clock=time)
    url = sandbox.start()
    try:
        sandbox.seed_company(REALM, **CREDENTIALS)
        ledger = adapter(registry("quickbooks", url, time), "quickbooks", REALM)
        customer = ledger.create_customer("Acme Corp", None, "USD", "cus_1", "key-customer")
        for n in range(40):
            ledger.create_invoices([(draft(f"M-{n:03d}", customer.id), f"key-{n}")])
        with pytest.raises(LedgerThrottled) as caught:
            ledger.create_invoices([(draft("M-040", customer.id), "key-40")])
        assert caught.value.retry_after is not None and caught.value.retry_after > 5
        assert sum(1 for _, p, _ in sandbox.request_log if p.split("?")[0].endswith("/batch")) == 40
    finally:
        sandbox.stop()


def test_xero_keeps_to_60_calls_a_minute_exactly(time: FakeTime) -> None:
    """Given Xero's 60 calls a minute, 61 calls from one worker are all answered 200: the 61st
    waits for the window (no 429, so no Retry-After is ever waited out)."""
    sandbox = XeroSandbox(clock=time)
    url = sandbox.start()
    try:
        sandbox.seed_organisation(TENANT, **CREDENTIALS)
        ledgers = registry("xero", url, time)
        ledgers.set_patience(90.0)
        ledger = adapter(ledgers, "xero", TENANT)
        for n in range(61):
            assert ledger.find_invoice(f"X-{n}") is None
        api = [s for _, p, s in sandbox.request_log if p.startswith("/api.xro/")]
        assert api == [200] * 61
        assert sum(time.sleeps) >= 60.0 - 1e-6
    finally:
        sandbox.stop()


@pytest.fixture
def freshbooks() -> Iterator[tuple[FreshBooksSandbox, FreshBooksLedger]]:
    # Real time with latency: the two look-ups would overlap without the adapter's lock.
    sandbox = FreshBooksSandbox(latency_seconds=0.2)
    url = sandbox.start()
    sandbox.seed_account(ACCOUNT, business_id=900002, **CREDENTIALS)
    environment = {
        **dict.fromkeys(
            ["SYNC_TABLE", "MAPPINGS_TABLE", "SYNC_QUEUE_URL", "ARCHIVE_BUCKET", "ALERTS_TOPIC_ARN"], "-"
        ),
        **LEDGERS["freshbooks"].environment(url),
    }
    ledgers = LedgerRegistry(Settings.from_env(environment), MemoryLease(), _vault())
    ledger = adapter(ledgers, "freshbooks", ACCOUNT)
    assert isinstance(ledger, FreshBooksLedger)
    yield sandbox, ledger
    sandbox.stop()


def test_freshbooks_threads_creating_one_customer_make_one_client(
    freshbooks: tuple[FreshBooksSandbox, FreshBooksLedger],
) -> None:
    """Given two threads of one worker creating the same new customer at once (two batches of a
    backfill in flight), FreshBooks, which takes two clients of one name, gets one: the second
    thread's look-up finds the first one's client and it is DuplicateName (push then adopts it)."""
    sandbox, ledger = freshbooks
    results: list[LedgerContact | Exception] = []
    lock = threading.Lock()

    def create(key: str) -> None:
        try:
            contact: LedgerContact | Exception = ledger.create_customer(
                "Acme Corp", None, "USD", "cus_1", key
            )
        except DuplicateName as error:
            contact = error
        with lock:
            results.append(contact)

    threads = [threading.Thread(target=create, args=(f"key-{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(type(r).__name__ for r in results) == ["DuplicateName", "LedgerContact"]
    assert [c["organization"] for c in sandbox.documents(ACCOUNT, "clients")] == ["Acme Corp"]
