"""A clock for the limiter and the HTTP plumbing that only moves when something sleeps."""

from __future__ import annotations


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
