"""Reconciliation's join on generated data: 100,000 and 1,000,000 documents per side.

Prints, for each size, the time and peak memory (tracemalloc) of feeding the three sides and
comparing them, then the ratio time(1M)/time(100k) (linear: at most 11). A few differences of
every kind are planted so the judging path runs, not only the happy one. Last line:
``reconcile_ratio=<ratio> x``.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime

from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.sync.reconcile import LedgerEntry, Reconciler, SourceDoc

START = datetime(2026, 11, 2, tzinfo=UTC)


def sources(n: int) -> Iterator[SourceDoc]:
    for i in range(n):
        yield SourceDoc(
            "invoice", f"in_{i}", f"N{i}", "USD", 10_000 + i % 97, 800, "open", int(START.timestamp()) + 60
        )


def records(n: int) -> Iterator[SyncRecord]:
    for i in range(n):
        yield SyncRecord.model_construct(
            connection_id="bench",
            kind="invoice",
            source_id=f"in_{i}",
            status=SyncStatus.SYNCED,
            ledger_id=f"L{i}",
            created_at=START,
            currency="USD",
            source_total=10_000 + i % 97,
        )


def ledger(n: int) -> Iterator[LedgerEntry]:
    for i in range(n):
        if i % 10_000 == 1:
            continue  # missing in the ledger
        total = 10_000 + i % 97 + (500 if i % 10_000 == 2 else 0)  # amount differs
        yield LedgerEntry("invoice", f"L{i}", f"in_{i}", f"N{i}", "USD", total, 800, total, False)
        if i % 10_000 == 3:
            yield LedgerEntry("invoice", f"D{i}", f"in_{i}", f"N{i}", "USD", total, 800, total, False)


def measure(n: int) -> tuple[float, int, int]:
    tracemalloc.start()
    began = time.perf_counter()
    reconciler = Reconciler(START)
    reconciler.add_sources(sources(n))
    reconciler.add_records(records(n))
    reconciler.add_ledger(ledger(n))
    found = len(reconciler.compare().differences)
    elapsed = time.perf_counter() - began
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak, found


def main() -> int:
    small, large = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (100_000, 1_000_000)
    results = {}
    for n in (small, large):
        elapsed, peak, found = measure(n)
        results[n] = elapsed
        print(
            f"{n:>9} documents per side: {elapsed:6.2f} s, peak {peak / 2**20:7.1f} MiB, {found} differences"
        )
    print(f"reconcile_ratio={results[large] / results[small]:.2f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
