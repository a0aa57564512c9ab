"""What travels on the sync queue: one source snapshot to converge the ledger on."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, model_validator

from invoice_sync.models.documents import CreditNote, Document, Invoice, Refund


class SyncMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    connection_id: str
    source: str
    event_id: str
    event_type: str
    version: int
    # Where the raw webhook is archived; None while it travels here instead (``raw``).
    archive_key: str | None = None
    # The normalised snapshot (one of the three); none when it would not fit in an SQS message,
    # and push re-reads the raw archive instead.
    invoice: Invoice | None = None
    credit_note: CreditNote | None = None
    refund: Refund | None = None
    # An operator's replay with today's mapping: an invoice already synced from this very snapshot
    # is written again when a newer mapping version has come since (a plain redelivery is not).
    remap: bool = False
    # The webhook's exact body and arrival, from intake to push: push archives a batch's bodies
    # in one object before anything else, then goes on with the archive key (``store.archive``).
    raw: str | None = None
    received_at: datetime | None = None

    @model_validator(mode="after")
    def _archived_or_carried(self) -> SyncMessage:
        if self.archive_key is None and self.raw is None:
            raise ValueError("a sync message needs its archive key or its raw body")
        if self.raw is not None and self.received_at is None:
            raise ValueError("a raw body travels with its arrival time")
        return self

    @property
    def document(self) -> Document | None:
        return self.invoice or self.credit_note or self.refund
