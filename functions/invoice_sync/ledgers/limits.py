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


class RateLimiter:
    def __init__(
        self,
        per_minute: int,
        concurrent: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.per_minute = per_minute
        self._slots = threading.BoundedSemaphore(concurrent)
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock
        self._sleep = sleep
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
            self._sleep(max(wait, 0.01))

    @contextmanager
    def slot(self) -> Iterator[None]:
        self._wait_for_window()
        with self._slots:
            yield
