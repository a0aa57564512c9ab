"""Client-side limits per ledger company: sliding request windows and a concurrency cap.

They keep one worker inside the ledger's published limits; the ledger's 429 remains the
authority across workers, and the adapter honours it (``pause`` holds every thread of this
worker for a 429's Retry-After, not only the one that got it).

A request counts in a window from the moment it is sent until one span after its response
came back. The ledger stamps a request when it arrives, which is somewhere in between, so
counting from the response is the one bound that can never run ahead of the ledger's own
count: a request sent the instant the window allows is never refused for arriving a
millisecond early, and no 429's Retry-After has to be waited out for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from invoice_sync.errors import LedgerThrottled

MINUTE = 60.0
SECOND = 1.0
DAY = 86_400.0
# How long to look again when a window is full of requests still in flight (no end known yet).
POLL_SECONDS = 0.05


@dataclass(slots=True)
class _Stamp:
    at: float  # when sent, then (once done) when its response came back
    done: bool = False


@dataclass
class _Window:
    """At most ``limit`` requests in any ``span`` seconds."""

    limit: int
    span: float
    name: str
    stamps: list[_Stamp] = field(default_factory=list)

    def wait(self, now: float) -> float | None:
        """Seconds until one more request fits (0: now); None when only a request still in
        flight can make room (its end is not known yet)."""
        self.stamps = [s for s in self.stamps if not (s.done and s.at <= now - self.span)]
        if len(self.stamps) < self.limit:
            return 0.0
        ended = [s.at for s in self.stamps if s.done]
        return min(ended) + self.span - now if ended else None


class RateLimiter:
    """``per_minute`` requests a minute and ``concurrent`` at once, plus optional windows: a
    per-second and a per-day cap on every request, and ``named`` per-minute caps on the requests
    that name them (QBO's 40 ``/batch`` requests a minute). Thread-safe: one limiter serves
    every thread of a worker that talks to one ledger company."""

    def __init__(
        self,
        per_minute: int,
        concurrent: int,
        *,
        per_second: int | None = None,
        per_day: int | None = None,
        named: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 5.0,
    ) -> None:
        self.per_minute = per_minute
        self.concurrent = concurrent
        self._windows = [_Window(per_minute, MINUTE, f"{per_minute} requests a minute")]
        if per_second is not None:
            self._windows.append(_Window(per_second, SECOND, f"{per_second} requests a second"))
        if per_day is not None:
            self._windows.append(_Window(per_day, DAY, f"{per_day} requests a day"))
        self._named = {
            name: _Window(limit, MINUTE, f"{limit} {name} requests a minute")
            for name, limit in (named or {}).items()
        }
        self._slots = threading.BoundedSemaphore(concurrent)
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._paused_until = float("-inf")
        # How long a request may wait here for a window before it is refused as throttled: short
        # in Lambda (the invocation is the budget; the queue waits for free), longer in the CLI.
        self.max_wait = max_wait
        self.requests = 0

    def limits(self, window: str | None = None) -> dict[str, int]:
        """The caps a request naming ``window`` counts against, by description."""
        return {w.name: w.limit for w in self._applying(window)}

    def _applying(self, window: str | None) -> list[_Window]:
        named = self._named.get(window) if window is not None else None
        # A name this limiter does not cap costs nothing: the adapter names its windows whatever
        # limits it was built with.
        return [*self._windows, named] if named is not None else list(self._windows)

    def pause(self, seconds: float) -> None:
        """No request starts for ``seconds``: the ledger said so (a 429's Retry-After)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _admit(self, windows: list[_Window]) -> list[_Stamp]:
        while True:
            with self._lock:
                now = self._clock()
                waits = [w.wait(now) for w in windows]
                paused = self._paused_until - now
                if paused <= 0 and all(w == 0.0 for w in waits):
                    stamps = [_Stamp(now) for _ in windows]
                    for window, stamp in zip(windows, stamps, strict=True):
                        window.stamps.append(stamp)
                    self.requests += 1
                    return stamps
                known = [w for w in waits if w is not None]
                wait = max([paused, *known])
                if len(known) < len(waits):
                    wait = max(wait, POLL_SECONDS)
                full = next((w.name for w, left in zip(windows, waits, strict=True) if left != 0.0), None)
            if wait > self.max_wait:
                # Waiting out the window here would burn the invocation; the queue waits for free.
                limit = f"client-side limit of {full}" if full else "the ledger asked to wait"
                raise LedgerThrottled(limit, retry_after=wait)
            self._sleep(max(wait, 0.01))

    @contextmanager
    def slot(self, window: str | None = None) -> Iterator[None]:
        """Holds one request: a concurrency slot, then room in every window it counts in (the
        general ones and ``window``), until the response is back."""
        windows = self._applying(window)
        with self._slots:
            stamps = self._admit(windows)
            try:
                yield
            finally:
                with self._lock:
                    now = self._clock()
                    for stamp in stamps:
                        stamp.at, stamp.done = now, True
