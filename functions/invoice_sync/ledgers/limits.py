"""Client-side limits per ledger company: a request-rate window and a concurrency cap.

They keep one worker inside the ledger's published limits; the ledger's 429 remains the
authority across workers, and the adapter honours it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from invoice_sync.errors import LedgerThrottled


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        concurrent: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_wait: float = 5.0,
    ) -> None:
        self.per_minute = per_minute
        self._slots = threading.BoundedSemaphore(concurrent)
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
        self._max_wait = max_wait
        self.requests = 0

    def _wait_for_window(self) -> None:
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and now - self._sent[0] >= 60.0:
                    self._sent.popleft()
                if len(self._sent) < self.per_minute:
                    self._sent.append(now)
                    self.requests += 1
                    return
                wait = 60.0 - (now - self._sent[0])
            if wait > self._max_wait:
                # Waiting out the window here would burn the invocation; the queue waits for free.
                raise LedgerThrottled(
                    f"client-side limit of {self.per_minute} requests a minute", retry_after=wait
                )
            self._sleep(max(wait, 0.01))

    @contextmanager
    def slot(self) -> Iterator[None]:
        self._wait_for_window()
        with self._slots:
            yield
