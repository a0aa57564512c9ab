"""RateLimiter: sliding windows (a minute, a second, a day, named ones) and a pause per ledger company,
with a fake clock and sleep."""

from __future__ import annotations

import threading

import pytest

from invoice_sync.errors import LedgerThrottled
from invoice_sync.ledgers.limits import POLL_SECONDS, RateLimiter
from tests.unit.fake_time import FakeTime


def test_requests_within_the_limit_do_not_wait() -> None:
    """Given 500 requests in the same instant, none sleeps and all are counted."""
    time = FakeTime()
    limiter = RateLimiter(500, 10, clock=time.clock, sleep=time.sleep)
    for _ in range(500):
        with limiter.slot():
            pass
    assert time.sleeps == []
    assert limiter.requests == 500


def test_the_501st_request_in_a_minute_waits_for_the_window() -> None:
    """Given 500 requests at t=0..10s and a limiter allowed to wait a minute, the 501st at t=20s
    sleeps the 40s left until the first one leaves the window, then goes through."""
    time = FakeTime(start=0.0)
    limiter = RateLimiter(500, 10, clock=time.clock, sleep=time.sleep, max_wait=60)
    with limiter.slot():
        pass
    time.now = 10.0
    for _ in range(499):
        with limiter.slot():
            pass
    time.now = 20.0
    with limiter.slot():
        pass
    assert time.sleeps == [40.0]
    assert time.now == 60.0
    assert limiter.requests == 501


def test_a_wait_longer_than_allowed_is_throttling_not_sleep() -> None:
    """Given a full window and the default 5 s wait allowance, the next request raises
    LedgerThrottled with the wait as retry_after instead of sleeping the invocation away."""
    time = FakeTime(start=0.0)
    limiter = RateLimiter(2, 1, clock=time.clock, sleep=time.sleep)
    for _ in range(2):
        with limiter.slot():
            pass
    time.now = 30.0
    with pytest.raises(LedgerThrottled) as caught, limiter.slot():
        pass
    assert caught.value.retry_after == 30.0
    assert time.sleeps == []
    assert limiter.requests == 2


def test_window_slides_after_a_minute() -> None:
    """Given a full window, a request a minute later goes through without waiting."""
    time = FakeTime()
    limiter = RateLimiter(3, 1, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        with limiter.slot():
            pass
    time.now += 60.0
    with limiter.slot():
        pass
    assert time.sleeps == []
    assert limiter.requests == 4


def test_concurrency_slot_is_released_on_error() -> None:
    """Given a one-slot limiter and a request that raises, the slot is released for the next request."""
    time = FakeTime()
    limiter = RateLimiter(10, 1, clock=time.clock, sleep=time.sleep)
    try:
        with limiter.slot():
            raise RuntimeError("ledger call failed")
    except RuntimeError:
        pass
    with limiter.slot():
        pass
    assert limiter.requests == 2


def test_a_request_counts_until_a_minute_after_its_response() -> None:
    """Given one request a minute, sent at t=0 and answered at t=2 (the ledger stamped it somewhere
    in between), the next one at t=61 waits until t=62: counting from the response is the bound
    that never runs ahead of the ledger's own window, so the ledger never refuses it."""
    time = FakeTime(start=0.0)
    limiter = RateLimiter(1, 1, clock=time.clock, sleep=time.sleep, max_wait=60)
    with limiter.slot():
        time.now = 2.0  # the response comes back
    time.now = 61.0
    with limiter.slot():
        pass
    assert time.sleeps == [1.0]
    assert time.now == 62.0


def test_a_named_window_caps_only_the_requests_that_name_it() -> None:
    """Given 500 a minute with at most 2 "batch" requests, a third batch request in the minute
    waits for the window while an ordinary request in the same instant goes at once."""
    time = FakeTime(start=0.0)
    limiter = RateLimiter(500, 10, named={"batch": 2}, clock=time.clock, sleep=time.sleep, max_wait=60)
    for _ in range(2):
        with limiter.slot("batch"):
            pass
    with limiter.slot():
        pass
    with limiter.slot("other-name"):  # a name the limiter does not cap costs nothing
        pass
    assert time.sleeps == []
    with limiter.slot("batch"):
        pass
    assert time.sleeps == [60.0]
    assert limiter.requests == 5
    assert limiter.limits("batch") == {"500 requests a minute": 500, "2 batch requests a minute": 2}


def test_the_per_second_window_spreads_a_burst() -> None:
    """Given 10 requests a second (QBO's), an 11th in the same instant waits one second; the
    minute window is not what holds it."""
    time = FakeTime(start=0.0)
    limiter = RateLimiter(500, 10, per_second=10, clock=time.clock, sleep=time.sleep)
    for _ in range(11):
        with limiter.slot():
            pass
    assert time.sleeps == [1.0]


def test_a_full_day_window_is_refused_at_once_with_the_wait() -> None:
    """Given Xero's day limit (here 3 a day) used up, the next request is not sent: it is
    LedgerThrottled with the hours left until the first one leaves the day, not a sleep."""
    time = FakeTime(start=0.0)
    limiter = RateLimiter(60, 5, per_day=3, clock=time.clock, sleep=time.sleep)
    for _ in range(3):
        with limiter.slot():
            pass
    time.now = 3600.0
    with pytest.raises(LedgerThrottled) as caught, limiter.slot():
        pass
    assert caught.value.retry_after == 86_400.0 - 3600.0
    assert "3 requests a day" in str(caught.value)
    assert time.sleeps == []
    assert limiter.requests == 3


def test_pause_holds_every_request_for_the_ledgers_retry_after() -> None:
    """Given the ledger asked this worker to wait 3 s (a 429's Retry-After), the next request of
    any thread sleeps those 3 s first; one allowed to wait only 2 s is refused with the wait."""
    time = FakeTime(start=0.0)
    limiter = RateLimiter(60, 5, clock=time.clock, sleep=time.sleep)
    limiter.pause(3.0)
    with limiter.slot():
        pass
    assert time.sleeps == [3.0]
    limiter.pause(3.0)
    limiter.max_wait = 2.0
    with pytest.raises(LedgerThrottled) as caught, limiter.slot():
        pass
    assert caught.value.retry_after == 3.0
    assert "the ledger asked to wait" in str(caught.value)


def test_a_window_full_of_requests_in_flight_waits_for_one_to_end() -> None:
    """Given one request a minute and one in flight on another thread, the next request cannot
    know when the window frees (the response is not back): it looks again until that request
    ends, then waits the minute from its response, and goes."""
    time = FakeTime(start=0.0)
    inside, release, done = threading.Event(), threading.Event(), threading.Event()
    limiter = RateLimiter(1, 2, clock=time.clock, sleep=time.sleep, max_wait=60)

    def first() -> None:
        with limiter.slot():
            inside.set()
            release.wait(timeout=5)
            time.now = 5.0  # its response comes back at t=5
        done.set()

    def sleep(seconds: float) -> None:
        time.sleep(seconds)
        release.set()
        done.wait(timeout=5)

    limiter._sleep = sleep
    thread = threading.Thread(target=first)
    thread.start()
    assert inside.wait(timeout=5)
    with limiter.slot():
        pass
    thread.join(timeout=5)
    assert time.sleeps[0] == POLL_SECONDS
    assert time.now == 65.0  # a minute after the first one's response
    assert limiter.requests == 2
