"""An in-memory SyncState store for unit tests of push and payments back: the same revisions and
conditional writes as ``store.sync_state.SyncStateStore`` (a write at a stale revision raises
``ConcurrentUpdate``), records copied in and out as the table would, links and alert markers."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from invoice_sync.models.sync import LedgerPaid, LedgerPaidState, SyncRecord, SyncStatus, utcnow
from invoice_sync.store.sync_state import ConcurrentUpdate


class FakeState:
    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], tuple[SyncRecord, int]] = {}
        self.links: dict[tuple[str, str], str] = {}
        self.charges: dict[tuple[str, str], str] = {}
        self.alert_marks: set[str] = set()
        self.saves: list[SyncRecord] = []
        # Called with each record about to be written; raising from it plays a crash.
        self.before_save: Callable[[SyncRecord], None] | None = None

    # --- records ------------------------------------------------------------------------------

    def put(self, record: SyncRecord) -> int:
        """Seeds a record as if some earlier run wrote it; returns its revision."""
        current = self.records.get((record.connection_id, record.kind, record.source_id))
        return self.save(record, current[1] if current else 0)

    def get(self, connection_id: str, kind: str, source_id: str) -> tuple[SyncRecord | None, int]:
        found = self.records.get((connection_id, kind, source_id))
        if found is None:
            return None, 0
        return found[0].model_copy(deep=True), found[1]

    def save(self, record: SyncRecord, revision: int) -> int:
        key = (record.connection_id, record.kind, record.source_id)
        current = self.records.get(key)
        if (current[1] if current else 0) != revision:
            raise ConcurrentUpdate(f"{record.kind} {record.source_id} was updated by another worker")
        if self.before_save is not None:
            self.before_save(record)
        now = utcnow()
        record.updated_at = now
        record.created_at = record.created_at or now
        self.records[key] = (record.model_copy(deep=True), revision + 1)
        self.saves.append(record.model_copy(deep=True))
        return revision + 1

    def records_with_prefix(
        self, connection_id: str, kind: str, source_prefix: str
    ) -> Iterator[tuple[SyncRecord, int]]:
        for (connection, found_kind, source_id), (record, revision) in sorted(self.records.items()):
            if connection == connection_id and found_kind == kind and source_id.startswith(source_prefix):
                yield record.model_copy(deep=True), revision

    def synced_total(self, connection_id: str, kind: str, source_prefix: str) -> int:
        return sum(
            record.ledger_total or 0
            for record, _ in self.records_with_prefix(connection_id, kind, source_prefix)
            if record.status is SyncStatus.SYNCED
        )

    def record(self, connection_id: str, kind: str, source_id: str) -> SyncRecord:
        found, _ = self.get(connection_id, kind, source_id)
        assert found is not None, f"no {kind} record {source_id}"
        return found

    # --- links --------------------------------------------------------------------------------

    def link(self, connection_id: str, name: str, record_sk: str) -> None:
        assert name.startswith(("ledger-payment:", "pr_", "payment-of:")), name
        self.links[(connection_id, name)] = record_sk

    def linked(self, connection_id: str, name: str) -> str | None:
        return self.links.get((connection_id, name))

    def link_charges(self, connection_id: str, charges: Sequence[str], invoice_source_id: str) -> None:
        for charge in charges:
            self.charges[(connection_id, charge)] = invoice_source_id

    def invoice_of_charge(self, connection_id: str, charges: Sequence[str]) -> str | None:
        return next(
            (self.charges[(connection_id, c)] for c in charges if (connection_id, c) in self.charges), None
        )

    # --- ledger_paid on an invoice's record ---------------------------------------------------

    def reserve_ledger_paid(
        self,
        connection_id: str,
        invoice_source_id: str,
        key: str,
        amount: int,
        state: LedgerPaidState,
        expected_revision: int,
        *,
        at: datetime | None = None,
    ) -> tuple[SyncRecord, int]:
        record = self._invoice_at(connection_id, invoice_source_id, expected_revision)
        entry = LedgerPaid(amount=amount, state=state, at=at or utcnow())
        record.ledger_paid = {**(record.ledger_paid or {}), key: entry}
        return record, self.save(record, expected_revision)

    def release_ledger_paid(
        self, connection_id: str, invoice_source_id: str, key: str, expected_revision: int
    ) -> tuple[SyncRecord, int]:
        record = self._invoice_at(connection_id, invoice_source_id, expected_revision)
        if key not in (record.ledger_paid or {}):
            return record, expected_revision
        record.ledger_paid = {k: v for k, v in (record.ledger_paid or {}).items() if k != key} or None
        return record, self.save(record, expected_revision)

    def _invoice_at(self, connection_id: str, invoice_source_id: str, expected_revision: int) -> SyncRecord:
        record, revision = self.get(connection_id, "invoice", invoice_source_id)
        if record is None or revision != expected_revision:
            raise ConcurrentUpdate(f"invoice {invoice_source_id} was updated by another worker")
        return record

    # --- alert markers ------------------------------------------------------------------------

    def alert_sent(self, key: str) -> bool:
        return key in self.alert_marks

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None:
        self.alert_marks.add(key)


class FakeAlerts:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, dict[str, Any]]] = []

    def publish(self, subject: str, text: str, details: dict[str, Any]) -> None:
        self.published.append((subject, text, details))

    @property
    def reasons(self) -> list[object]:
        return [details.get("reason") for _, _, details in self.published]
