"""What travels on the queues: one source snapshot to converge the ledger on (``SyncMessage``), and
one ledger change that may need telling the source (``LedgerEventMessage``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    FieldSerializationInfo,
    SecretStr,
    field_serializer,
    model_validator,
)

from invoice_sync.models.documents import CreditNote, Document, Invoice, Payout, Refund, Subject
from invoice_sync.models.mapping import LedgerKind


class SyncMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    connection_id: str
    source: str
    event_id: str
    event_type: str
    version: int
    # Where the raw webhook is archived; None while it travels here instead (``raw``).
    archive_key: str | None = None
    # The normalised snapshot (one of the four); none when it would not fit in an SQS message,
    # and push re-reads the raw archive instead.
    invoice: Invoice | None = None
    credit_note: CreditNote | None = None
    refund: Refund | None = None
    # A Stripe payout (payout.* events): not a ``Document``, so ``document`` is None on its message.
    payout: Payout | None = None
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
        if sum(s is not None for s in (self.invoice, self.credit_note, self.refund, self.payout)) > 1:
            raise ValueError("a sync message carries at most one snapshot")
        return self

    @property
    def document(self) -> Document | None:
        """The invoice, credit note or refund it carries; None for a payout's message (``payout``)
        and for one that travels without its snapshot."""
        return self.invoice or self.credit_note or self.refund

    @property
    def subject(self) -> Subject | None:
        """The snapshot it carries, whichever kind; None when it travels without one."""
        return self.document or self.payout


# Serialisation context that writes the verifier out: only ``LedgerEventMessage.to_queue_body``.
_REVEAL = "reveal_verifier"


class LedgerEventMessage(BaseModel):
    """A hint on the ledger events queue: "this ledger object may have changed" (design 3.2). The
    worker always re-reads the object, so duplicates and out-of-order deliveries converge.

    ``verifier`` is a FreshBooks ``callback_verify``'s code, and only that kind carries one. It is
    never in a repr, a ``str`` or a log line, and ``model_dump``/``model_dump_json`` write it as
    ``null``: only ``to_queue_body()`` writes its value, for the SQS message that takes it to the
    worker (the one function that confirms it with FreshBooks and keeps it as a key).
    """

    model_config = ConfigDict(frozen=True)

    connection_id: str
    ledger: LedgerKind
    kind: Literal["payment", "credit_note", "invoice", "callback_verify"]
    object_id: str  # ledger id of the payment / credit memo / invoice / callback
    operation: str  # create | update | delete | void | merge | emailed | verify | poll
    changed_at: datetime | None  # lastUpdated / time / eventDateUtc / Xero UpdatedDateUTC
    event_id: str | None  # CloudEvents id, Xero "{firstEventSequence}:{i}", else none
    verifier: SecretStr | None = None  # callback_verify only; never logged
    payload: dict[str, Any] | None = None  # the Xero poll's Payment element (<= 8 KiB), saves a GET

    @model_validator(mode="after")
    def _verifier_only_to_verify(self) -> LedgerEventMessage:
        if (self.kind == "callback_verify") != (self.verifier is not None):
            raise ValueError("a verifier travels with a callback_verify message, and only with one")
        return self

    @field_serializer("verifier")
    def _verifier_hidden(self, value: SecretStr | None, info: FieldSerializationInfo) -> str | None:
        context = info.context
        if value is not None and isinstance(context, dict) and context.get(_REVEAL) is True:
            return value.get_secret_value()
        return None

    def to_queue_body(self) -> str:
        """The SQS message body, the verifier's value included (SQS-managed encryption, seconds in
        flight). Read back with ``from_queue_body``."""
        return self.model_dump_json(context={_REVEAL: True})

    @classmethod
    def from_queue_body(cls, body: str | bytes) -> LedgerEventMessage:
        return cls.model_validate_json(body)
