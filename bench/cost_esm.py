"""A model of Lambda's SQS event source mapping (ESM), for what it receives and deletes.

Lambda's pollers are not ours to meter, but their SQS requests are on our bill. AWS documents
the knobs (BatchSize, MaximumBatchingWindowInSeconds, ScalingConfig.MaximumConcurrency) and that,
for a standard queue, "Lambda uses long polling to poll a queue until it becomes active. When
messages are available, Lambda starts processing five batches at a time with five concurrent
invocations" (Lambda developer guide, "Configuring scaling behavior for SQS event source
mappings"). It does not document the receive loop itself, so this is the model, simulated event
by event:

* Messages arrive in bursts (a Stripe action sends its webhooks together: finalizing sends two,
  paying three), bursts as a Poisson process at the given rate.
* ``pollers`` pollers (5) each long-poll (``WaitTimeSeconds`` 20). A receive returns as soon as
  messages are there, at most 10 and at most what the batch still has room for; a poll that
  finds nothing in 20 s returns empty and is issued again (an *idle* receive).
* A poller that got its first message keeps receiving until the batch is full (BatchSize) or the
  batching window has passed since that first message; the receive outstanding when the window
  closes returns empty (a *window* receive). With no window, it invokes with what it got.
* At most ``max_concurrency`` invocations run at once; a poller with a batch ready waits for a
  slot. An invocation takes ``invoke_seconds``; afterwards one DeleteMessageBatch removes the
  batch (ReportBatchItemFailures leaves failures to the visibility timeout: no request).

What comes out is per message: receives that carried messages (their sizes, for 64 KB chunks),
window receives, deletes and invocations (the batch sizes), and per hour the idle receives.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from dataclasses import dataclass, field

LONG_POLL_SECONDS = 20.0
MAX_PER_RECEIVE = 10
IDLE_POLLERS = 5  # per event source, whatever its MaximumConcurrency (the model's assumption)


@dataclass
class EsmResult:
    seconds: float
    messages: int = 0
    invocations: int = 0
    deletes: int = 0
    receives: Counter[int] = field(default_factory=Counter)  # messages per receive that returned some
    window_receives: int = 0
    idle_receives: int = 0
    batches: Counter[int] = field(default_factory=Counter)

    @property
    def mean_batch(self) -> float:
        return self.messages / self.invocations if self.invocations else 0.0

    def batch_sequence(self, rng: random.Random, count: int) -> list[int]:
        """``count`` batch sizes drawn from the simulated distribution (for driving push)."""
        sizes = sorted(self.batches)
        weights = [self.batches[s] for s in sizes]
        return rng.choices(sizes, weights=weights, k=count)

    def receive_chunks(self, message_bytes: float, chunk: int = 64 * 1024) -> int:
        """Billable receive requests: each returned receive in 64 KB chunks of its messages."""
        total = 0
        for count, times in self.receives.items():
            total += times * max(1, -(-int(count * message_bytes) // chunk))
        return total


@dataclass
class _Poller:
    index: int
    batch: int = 0
    window_end: float = 0.0
    token: int = 0  # invalidates a scheduled timeout once the poll has returned


def simulate(  # noqa: PLR0915 - the whole event loop in one place
    *,
    bursts_per_second: float,
    burst_sizes: list[int],
    burst_weights: list[float],
    batch_size: int,
    window_seconds: float,
    max_concurrency: int,
    invoke_seconds: float,
    pollers: int = IDLE_POLLERS,
    seconds: float = 3600.0,
    seed: int = 1,
) -> EsmResult:
    rng = random.Random(seed)
    result = EsmResult(seconds=seconds)
    events: list[tuple[float, int, str, int, int]] = []  # (time, order, kind, poller, token/size)
    order = 0

    def push(when: float, kind: str, poller: int = -1, value: int = 0) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, (when, order, kind, poller, value))

    t = 0.0
    while True:
        t += rng.expovariate(bursts_per_second)
        if t >= seconds:
            break
        push(t, "arrival", value=rng.choices(burst_sizes, weights=burst_weights)[0])

    state = [_Poller(i) for i in range(pollers)]
    waiting: list[int] = []  # pollers with a poll outstanding, oldest first
    ready: list[int] = []  # pollers holding a batch, waiting for an invocation slot
    available = 0
    running = 0

    def start(p: _Poller, now: float) -> None:
        nonlocal running
        running += 1
        result.invocations += 1
        result.batches[p.batch] += 1
        push(now + invoke_seconds, "done", p.index)

    def finish(p: _Poller, now: float) -> None:
        if running < max_concurrency:
            start(p, now)
        else:
            ready.append(p.index)

    def deliver(p: _Poller, count: int, now: float) -> None:
        result.receives[count] += 1
        if p.batch == 0:
            p.window_end = now + window_seconds
        p.batch += count
        if p.batch >= batch_size or window_seconds <= 0 or now >= p.window_end:
            finish(p, now)
        else:
            poll(p, now)

    def poll(p: _Poller, now: float) -> None:
        nonlocal available
        if available > 0:
            count = min(available, MAX_PER_RECEIVE, batch_size - p.batch)
            available -= count
            deliver(p, count, now)
            return
        p.token += 1
        waiting.append(p.index)
        deadline = p.window_end if p.batch else now + LONG_POLL_SECONDS
        push(deadline, "timeout", p.index, p.token)

    for p in state:
        poll(p, 0.0)

    while events:
        now, _, kind, index, value = heapq.heappop(events)
        if now > seconds and kind != "done":
            continue
        if kind == "arrival":
            available += value
            while available > 0 and waiting:
                p = state[waiting.pop(0)]
                p.token += 1
                count = min(available, MAX_PER_RECEIVE, batch_size - p.batch)
                available -= count
                deliver(p, count, now)
        elif kind == "timeout":
            p = state[index]
            if value != p.token:
                continue
            waiting.remove(index)
            if p.batch == 0:
                result.idle_receives += 1
                poll(p, now)
            else:
                result.window_receives += 1
                finish(p, now)
        elif kind == "done":
            p = state[index]
            running -= 1
            result.deletes += 1
            result.messages += p.batch
            p.batch = 0
            if ready:
                start(state[ready.pop(0)], now)
            if now <= seconds:
                poll(p, now)
    return result
