"""LedgerHttp and the limiter together: a 429's Retry-After holds the whole worker, a patient
caller waits it out, and QBO's /batch requests count in their own window. HTTP is an
``httpx.MockTransport``; time is a fake clock that only moves when something sleeps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from invoice_sync.errors import LedgerThrottled
from invoice_sync.ledgers.http import LedgerHttp
from invoice_sync.ledgers.limits import RateLimiter
from invoice_sync.ledgers.oauth import TokenManager
from invoice_sync.ledgers.port import InvoiceDraft, LineDraft
from invoice_sync.ledgers.quickbooks import client as qbo
from invoice_sync.ledgers.quickbooks.adapter import QuickBooksLedger
from invoice_sync.ledgers.xero.client import error_for as xero_error_for
from invoice_sync.models.tokens import TokenSet
from tests.unit.fake_time import FakeTime

Handler = Callable[[httpx.Request], httpx.Response]


class Vault:
    def ledger_tokens(self, connection_id: str) -> TokenSet:
        return TokenSet(
            client_id="client",
            client_secret=SecretStr("secret"),
            refresh_token=SecretStr("rt"),
            access_token=SecretStr("at"),
            access_expires_at=datetime.now(UTC) + timedelta(hours=1),
        )

    def save_ledger_tokens(self, connection_id: str, tokens: TokenSet) -> None:
        raise AssertionError("no refresh expected")


class Lease:
    def acquire_lock(self, name: str, owner: str, lease_seconds: int) -> bool:
        return True

    def release_lock(self, name: str, owner: str) -> None:
        return None


def ledger_http(
    handler: Handler, limiter: RateLimiter, time: FakeTime, error_for: Any = xero_error_for
) -> LedgerHttp:
    def refresh(tokens: TokenSet) -> TokenSet:
        raise AssertionError("no refresh expected")

    return LedgerHttp(
        base_url="https://ledger.test/api",
        tokens=TokenManager("acme", Vault(), Lease(), refresh),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        limiter=limiter,
        error_for=error_for,
        name="Ledger",
        max_attempts=4,
        sleep=time.sleep,
    )


def throttled_then_ok(retry_after: str, times: int = 1) -> tuple[Handler, list[int]]:
    answered: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = 429 if len(answered) < times else 200
        answered.append(status)
        headers = {"Retry-After": retry_after, "X-Rate-Limit-Problem": "minute"} if status == 429 else {}
        return httpx.Response(status, json={"ok": status == 200}, headers=headers)

    return handler, answered


def test_a_429s_retry_after_holds_every_request_of_the_worker() -> None:
    """Given a 429 with Retry-After: 3 that is not retried in place (one attempt), the limiter is
    paused: another request of this worker is refused at once with the 3 s left, not sent to be
    refused by the ledger too."""
    time = FakeTime(start=0.0)
    limiter = RateLimiter(60, 5, clock=time.clock, sleep=time.sleep, max_wait=1.0)
    handler, answered = throttled_then_ok("3")
    http = ledger_http(handler, limiter, time)
    http._max_attempts = 1
    with pytest.raises(LedgerThrottled) as first:
        http.request("GET", "Invoices")
    assert first.value.retry_after == 3.0
    with pytest.raises(LedgerThrottled) as second:
        http.request("GET", "Invoices")
    assert second.value.retry_after == 3.0
    assert answered == [429]  # the second request never left the worker
    assert http.quota.throttled == 1


def test_a_short_retry_after_is_waited_out_exactly_and_retried() -> None:
    """Given a 429 with Retry-After: 2, the request sleeps exactly 2 s and is sent again, once."""
    time = FakeTime(start=0.0)
    limiter = RateLimiter(60, 5, clock=time.clock, sleep=time.sleep)
    handler, answered = throttled_then_ok("2")
    http = ledger_http(handler, limiter, time)
    assert http.request("GET", "Invoices") == {"ok": True}
    assert answered == [429, 200]
    assert time.sleeps == [2.0]


def test_a_patient_caller_waits_out_a_long_retry_after() -> None:
    """Given a 429 asking for 40 s: by default (the push Lambda's 8 s of back-off) it is raised
    for the queue to retry; after set_patience(90) (the backfill's) the request waits the 40 s
    and goes through, and the limiter waits as long for its own window."""
    time = FakeTime(start=0.0)
    handler, answered = throttled_then_ok("40")
    impatient = ledger_http(handler, RateLimiter(60, 5, clock=time.clock, sleep=time.sleep), time)
    with pytest.raises(LedgerThrottled):
        impatient.request("GET", "Invoices")
    assert answered == [429]

    time = FakeTime(start=0.0)
    handler, answered = throttled_then_ok("40")
    limiter = RateLimiter(60, 5, clock=time.clock, sleep=time.sleep)
    patient = ledger_http(handler, limiter, time)
    patient.set_patience(90.0)
    assert patient.request("GET", "Invoices") == {"ok": True}
    assert answered == [429, 200]
    assert time.sleeps == [40.0]
    assert limiter.max_wait == 90.0


def draft(number: str) -> InvoiceDraft:
    line = LineDraft(
        item_id="1", description="Consulting", quantity=1, amount=Decimal("10.00"), tax_code="NON"
    )
    return InvoiceDraft(
        source_id=f"in_{number}",
        customer_id="58",
        number=number,
        issued_on=datetime(2026, 1, 15, tzinfo=UTC).date(),
        due_on=None,
        currency="USD",
        lines=(line,),
        discount=Decimal(0),
        tax=Decimal(0),
        total=Decimal("10.00"),
        memo=None,
        private_note=f"invoice-sync: stripe in_{number}",
    )


def test_qbo_batch_requests_count_in_their_own_window() -> None:
    """Given QBO's limits with 2 /batch requests a minute, the third batch waits a minute for
    the batch window, while a query in between goes at once: the batch window holds batches only."""
    time = FakeTime(start=0.0)
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path.rsplit("/", 1)[-1])
        if request.url.path.endswith("/batch"):
            items = [{"bId": "0", "Invoice": {"Id": "1", "SyncToken": "0", "TotalAmt": 10, "Balance": 10}}]
            return httpx.Response(200, json={"BatchItemResponse": items})
        return httpx.Response(200, json={"QueryResponse": {}})

    limiter = RateLimiter(
        qbo.REQUESTS_PER_MINUTE,
        qbo.CONCURRENT_REQUESTS,
        per_second=qbo.REQUESTS_PER_SECOND,
        named={qbo.BATCH_WINDOW: 2},
        clock=time.clock,
        sleep=time.sleep,
        max_wait=90,
    )
    ledger = QuickBooksLedger(qbo.QuickBooksClient(ledger_http(handler, limiter, time, qbo.fault_error)))
    for number in ("A-1", "A-2"):
        ledger.create_invoices([(draft(number), f"key-{number}")])
    assert ledger.find_invoice("A-9") is None
    assert time.sleeps == []
    ledger.create_invoices([(draft("A-3"), "key-A-3")])
    assert time.sleeps == [60.0]
    assert paths == ["batch", "batch", "query", "batch"]


def test_threads_share_the_limiter_and_never_exceed_its_concurrency() -> None:
    """Given a limiter of 2 at once and 6 threads whose requests wait on the test, at most 2 are
    ever inside the ledger call together."""
    limiter = RateLimiter(600, 2)
    inside = 0
    most = 0
    lock = threading.Lock()
    go = threading.Event()

    def call() -> None:
        nonlocal inside, most
        with limiter.slot():
            with lock:
                inside += 1
                most = max(most, inside)
            go.wait(timeout=5)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    two_inside = threading.Event()
    for _ in range(500):  # until two requests are inside (they wait there for `go`)
        with lock:
            if inside == 2:
                two_inside.set()
                break
        go.wait(0.01)
    assert two_inside.is_set()
    assert limiter.requests == 2  # the other four wait for a slot, not yet counted as sent
    go.set()
    for thread in threads:
        thread.join(timeout=10)
    assert most == 2
    assert limiter.requests == 6
