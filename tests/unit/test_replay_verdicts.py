"""The replay dry run says what push would do with a credit note whose invoice is not synced:
the same decision push makes in ``_converge_credit_note``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from invoice_sync.models.mapping import Connection, MappingRule, Mappings
from invoice_sync.models.sync import DocumentKind, SyncRecord, SyncStatus
from invoice_sync.store.archive import ArchivedEvent, archive_key
from invoice_sync.sync.replay import Verdict, difference

EVENT = Path(__file__).resolve().parents[1] / "events" / "stripe" / "f1_credit_note.created.current.json"
INVOICE = "in_1QaCurrentAcme01"


class Records:
    def __init__(self, *records: SyncRecord) -> None:
        self._records = {(r.kind, r.source_id): r for r in records}

    def get(self, connection_id: str, kind: DocumentKind, source_id: str) -> tuple[SyncRecord | None, int]:
        found = self._records.get((kind, source_id))
        return found, 1 if found else 0


class NoCustomers:
    def customer_rule(self, connection_id: str, source_id: str) -> MappingRule | None:
        return None


def _judge(*records: SyncRecord) -> tuple[Verdict, str]:
    key = archive_key("stripe", "acme", datetime(2026, 11, 30, tzinfo=UTC), "evt_cn")
    archived = ArchivedEvent(
        key=key,
        source="stripe",
        connection_id="acme",
        day=date(2026, 11, 30),
        event_id="evt_cn",
        stored_at=datetime(2026, 11, 30, 12, tzinfo=UTC),
    )
    mappings = Mappings(connection=Connection(connection_id="acme", tenant_id="1"))
    found = difference(
        archived, EVENT.read_bytes(), records=Records(*records), mappings=mappings, customers=NoCustomers()
    )
    return found.verdict, found.detail


def test_a_credit_note_of_a_parked_invoice_parks_with_it() -> None:
    """Given the credited invoice parked for a missing mapping, push parks the credit note (a
    ParkError), so the dry run calls it rejected and names the invoice's reason."""
    parked = SyncRecord(
        connection_id="acme",
        kind="invoice",
        source_id=INVOICE,
        status=SyncStatus.NEEDS_MAPPING,
        source_number="ACME-0001",
        last_error="mapping missing: product prod_X",
    )
    verdict, detail = _judge(parked)
    assert verdict is Verdict.REJECTED
    assert "ACME-0001" in detail and "prod_X" in detail


@pytest.mark.parametrize("status", [None, SyncStatus.PENDING])
def test_a_credit_note_whose_invoice_is_not_in_the_ledger_waits(status: SyncStatus | None) -> None:
    """Given the credited invoice unknown or still pending, push hands the credit note back to the
    queue (a TransientError) until it syncs, so the dry run says it waits, not that it is skipped."""
    records = (
        [SyncRecord(connection_id="acme", kind="invoice", source_id=INVOICE, status=status)] if status else []
    )
    verdict, detail = _judge(*records)
    assert verdict is Verdict.WAITS
    assert INVOICE in detail and "dead-letter" in detail


PAYOUT_EVENT = (
    Path(__file__).resolve().parents[1] / "events" / "stripe" / "h2_payout.reconciliation_completed.json"
)


def _judge_payout(*records: SyncRecord, deposits: bool = True) -> tuple[Verdict, str, dict[str, object]]:
    key = archive_key("stripe", "acme", datetime(2026, 12, 4, tzinfo=UTC), "evt_po")
    archived = ArchivedEvent(
        key=key,
        source="stripe",
        connection_id="acme",
        day=date(2026, 12, 4),
        event_id="evt_po",
        stored_at=datetime(2026, 12, 4, 12, tzinfo=UTC),
    )
    mappings = Mappings(connection=Connection(connection_id="acme", tenant_id="1", payout_deposits=deposits))
    found = difference(
        archived,
        PAYOUT_EVENT.read_bytes(),
        records=Records(*records),
        mappings=mappings,
        customers=NoCustomers(),
    )
    return found.verdict, found.detail, found.as_json()


def test_a_payout_replay_says_a_deposit_would_be_booked_then_that_it_is() -> None:
    """Given an archived payout.reconciliation_completed, the dry run says a deposit would be booked
    (kind payout, its PO- reference); once its record is synced, that it is unchanged; with payout
    deposits off, that it is skipped."""
    verdict, detail, shown = _judge_payout()
    assert verdict is Verdict.CREATE and "deposit would be booked" in detail
    assert (shown["kind"], shown["source_id"], shown["source_number"]) == ("payout", "po_1QxYz", "PO-1QxYz")
    booked = SyncRecord(
        connection_id="acme", kind="payout", source_id="po_1QxYz", status=SyncStatus.SYNCED, ledger_id="D1"
    )
    assert _judge_payout(booked)[0] is Verdict.UNCHANGED
    assert _judge_payout(deposits=False)[:2] == (Verdict.SKIPPED, "payout deposits not enabled")
