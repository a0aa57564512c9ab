"""Backfill's batches in flight: several handed to push at once on worker threads, each invoice
pushed once with its raw body (for push to archive, as intake's are), every outcome settled on
its own row in the order sent, never more batches in flight than allowed. Push is a fake;
nothing here is timed."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from invoice_sync.errors import TransientError
from invoice_sync.models.messages import SyncMessage
from invoice_sync.sync.push import Outcome, PushResult, PushService
from invoice_sync_ops.commands.backfill import Report, _Batches, _row
from invoice_sync_ops.sandboxes.stripe import generate_invoices
from invoice_sync_ops.stripe_import import synthetic_event


class FakePush:
    """handle_batch as push answers it: synced, except an invoice whose number ends in 7,
    which fails (it goes back to be retried); it records the most batches inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most = 0
        self.pushed: Counter[str] = Counter()
        self.ledger_use_counted = 0
        self._lock = threading.Lock()
        self.release = threading.Event()

    def handle_batch(self, messages: Sequence[SyncMessage]) -> list[PushResult | Exception]:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        self.release.wait(timeout=5)
        results: list[PushResult | Exception] = []
        for message in messages:
            assert message.document is not None
            # The event travels as intake sends one: push archives the raw bodies of the batch.
            assert message.raw is not None and message.received_at is not None
            assert message.archive_key is None
            source_id = message.document.source_id
            with self._lock:
                self.pushed[source_id] += 1
            if source_id.endswith("7"):
                results.append(TransientError("ledger unavailable"))
            else:
                results.append(PushResult(Outcome.SYNCED, source_id, f"L-{source_id}"))
        with self._lock:
            self.inside -= 1
        return results

    def count_ledger_use(self) -> None:
        self.ledger_use_counted += 1


def report() -> Report:
    return Report(
        connection="acme",
        ledger="quickbooks",
        batch_size=3,
        since=datetime(2025, 6, 1, tzinfo=UTC),
        until=None,
        statuses=("open",),
        dry_run=False,
    )


def test_every_invoice_is_archived_pushed_and_settled_once_with_batches_in_flight() -> None:
    """Given 20 invoices in batches of 3 (one of them unreadable) and 3 batches allowed in flight,
    each readable invoice is pushed exactly once with its raw body, its row gets its own outcome, the
    unreadable one is 'invalid', and never more than 3 batches are inside push together."""
    invoices = generate_invoices(20, start=1_748_736_000, statuses=("open",))
    rows: list[dict[str, Any]] = []
    pending: list[tuple[dict[str, Any], bytes]] = []
    push, tally = FakePush(), report()
    batches = _Batches(cast(PushService, push), "acme", tally, 3)
    for index, obj in enumerate(invoices):
        row = _row(obj)
        rows.append(row)
        body = b"{not json" if index == 4 else synthetic_event(obj)[1]
        pending.append((row, body))
        if len(pending) == 3:
            batches.send(pending)
            pending = []
            if len(rows) == 9:
                # The first three batches wait inside push until all three are there.
                for _ in range(500):
                    if push.inside == 3:
                        break
                    push.release.wait(0.01)
                push.release.set()
    batches.send(pending)
    batches.drain()
    batches.count_ledger_use()
    assert push.most == 3
    assert sorted(push.pushed.values()) == [1] * 19
    outcomes = {row["source_id"]: row["outcome"] for row in rows}
    assert outcomes[invoices[4]["id"]] == "invalid"
    failed = {obj["id"] for obj in invoices if obj["id"].endswith("7")}
    assert {source for source, outcome in outcomes.items() if outcome == "failed"} == failed
    assert all(
        outcomes[obj["id"]] == "synced" for obj in invoices if obj["id"] not in failed | {invoices[4]["id"]}
    )
    assert all(row["ledger_id"] == f"L-{row['source_id']}" for row in rows if row["outcome"] == "synced")
    assert tally.batches == 7
    assert sum(tally.counts.values()) == 20
    assert push.ledger_use_counted == 1
