"""What travels on the sync queue: one source snapshot to converge the ledger on."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from invoice_sync.models.documents import CreditNote, Document, Invoice, Refund


class SyncMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    connection_id: str
    source: str
    event_id: str
    event_type: str
    version: int
    archive_key: str
    # The normalised snapshot (one of the three); none when it would not fit in an SQS message,
    # and push re-reads the raw archive instead.
    invoice: Invoice | None = None
    credit_note: CreditNote | None = None
    refund: Refund | None = None
    # An operator's replay with today's mapping: an invoice already synced from this very snapshot
    # is written again when a newer mapping version has come since (a plain redelivery is not).
    remap: bool = False

    @property
    def document(self) -> Document | None:
        return self.invoice or self.credit_note or self.refund
