"""RateLimiter: a sliding one-minute window per ledger company, with a fake clock and sleep."""

from __future__ import annotations

import pytest

from invoice_sync.errors import LedgerThrottled
from invoice_sync.ledgers.limits import RateLimiter


class FakeTime:
    """A clock that only moves when something sleeps; records every sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


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
