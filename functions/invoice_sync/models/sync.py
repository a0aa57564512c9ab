"""Sync state: what invoice-sync knows about one source object in one connection."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

DocumentKind = Literal["invoice", "payment", "customer", "credit_note", "refund"]


class SyncStatus(StrEnum):
    PENDING = "pending"  # intent recorded: a ledger create may be in flight
    SYNCED = "synced"
    NEEDS_MAPPING = "needs_mapping"
    REJECTED = "rejected"  # the ledger refused the document (validation) or the snapshot is invalid
    FAILED = "failed"  # the connection cannot be used (revoked token, lapsed subscription)
    SKIPPED = "skipped"  # nothing to put in the books (a draft)

    @property
    def parked(self) -> bool:
        return self in {SyncStatus.NEEDS_MAPPING, SyncStatus.REJECTED, SyncStatus.FAILED}


def utcnow() -> datetime:
    return datetime.now(UTC)


class SyncRecord(BaseModel):
    """One item per (connection, kind, source id) in the SyncState table."""

    model_config = ConfigDict(validate_assignment=True)

    connection_id: str
    kind: DocumentKind
    source_id: str
    source_version: int = 0
    content_hash: str | None = None
    status: SyncStatus = SyncStatus.PENDING
    idempotency_key: str | None = None
    ledger_id: str | None = None
    ledger_version: str | None = None
    ledger_number: str | None = None
    ledger_customer_id: str | None = None
    # Invoices: their lines' products ({"il_…": "prod_…"} as JSON), so a credit note crediting a
    # line posts to the same item.
    line_products: str | None = None
    # Invoices: a digest of the ledger draft last written, so that a replay with a newer mapping
    # rewrites only the invoices today's mapping would write differently.
    draft_hash: str | None = None
    # Invoices: the refunds on them as JSON ({"charges": {"ch_…": refunded so far}, "credit":
    # {"cn_…": refunded through that credit note}, "booked": refunded cash booked as refund
    # documents}), so that money a credit note already gives back is never refunded twice.
    refunds: str | None = None
    source_number: str | None = None
    currency: str | None = None
    source_total: int | None = None
    ledger_total: int | None = None
    mapping_version: int | None = None
    attempts: int = 0
    last_error: str | None = None
    alerted_reason: str | None = None
    event_id: str | None = None
    # The raw archive's key of the event that last brought this record's snapshot (for a payment:
    # its invoice's event), so the operator CLI can re-drive a parked record from its source.
    archive_key: str | None = None
    # What the nightly export writes for this document (dates, customer, amounts, lines with their
    # ledger item, account and tax code), as compact JSON (``invoice_sync.models.summary``). None
    # on records written before the export existed: they export with blanks.
    summary: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
