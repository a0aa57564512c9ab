"""Push: converge the ledger on one source snapshot, exactly once, whatever the retries.

For each queued snapshot:
1. version guard: a snapshot older than the one already synced is skipped;
2. map it (every missing rule reported at once) and find or create the customer;
3. create or update the ledger invoice: the intent (its idempotency key) is recorded before a
   create; a retry that finds an intent looks the document up by number before creating, and
   brings what it finds up to the current snapshot; an intent younger than a push invocation can
   live belongs to a worker still at it, and is waited for;
4. record each payment against it the same way, each under its own sync record;
5. park what cannot be synced, with its reason, and alert once per reason (alert first, then
   record that it was sent, so a failed publish is retried rather than forgotten).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, timedelta
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import TYPE_CHECKING, Protocol

from invoice_sync.errors import (
    ConnectionBroken,
    DuplicateName,
    DuplicateNumber,
    InvalidSnapshot,
    InvoiceSyncError,
    MappingMissing,
    ParkError,
    StaleObject,
    TransientError,
)
from invoice_sync.ledgers.port import (
    InvoiceDraft,
    LedgerContact,
    LedgerDocument,
    LedgerPort,
    LineDraft,
    PaymentDraft,
    marker,
)
from invoice_sync.mapping.resolver import check_totals, resolve
from invoice_sync.models.documents import (
    Billed,
    CreditNote,
    CreditNoteStatus,
    Document,
    Invoice,
    InvoiceStatus,
    Payment,
    Payout,
    Refund,
    Subject,
)
from invoice_sync.models.mapping import MappingRule, Mappings, RuleKind
from invoice_sync.models.messages import SyncMessage
from invoice_sync.models.money import Money
from invoice_sync.models.summary import (
    credit_note_summary,
    invoice_summary,
    payment_summary,
    refund_summary,
)
from invoice_sync.models.sync import DocumentKind, SyncRecord, SyncStatus, utcnow
from invoice_sync.observability import logger
from invoice_sync.sources import SOURCES
from invoice_sync.store.archive import BundledEvent
from invoice_sync.store.sync_state import SyncStateStore
from invoice_sync.sync.keys import idempotency_key, request_key
from invoice_sync.sync.outcomes import park_reason

if TYPE_CHECKING:
    from invoice_sync.sync.payouts import PayoutService

TOTAL_DIFFERS = "ledger total differs"


def payment_link(charge: str) -> str:
    """The ``LINK#`` name of a charge or payment intent a booked payment carries (written when
    ``payout_deposits`` is on): -> that payment's record, for the payout that settles the charge."""
    return f"payment-of:{charge}"


CONNECTION_ALERT_SECONDS = 24 * 3600


class Outcome(StrEnum):
    DEFERRED = "deferred"  # held for a batch request (handle_batch replaces it with the real one)
    SYNCED = "synced"
    UNCHANGED = "unchanged"
    STALE = "stale"
    SKIPPED = "skipped"
    PARKED = "parked"


@dataclass(frozen=True)
class PushResult:
    outcome: Outcome
    source_id: str
    ledger_id: str | None = None
    reason: str | None = None


def _kind(document: Subject | None) -> DocumentKind:
    if isinstance(document, Payout):
        return "payout"
    if isinstance(document, CreditNote):
        return "credit_note"
    if isinstance(document, Refund):
        return "refund"
    return "invoice"


def _holds(
    record: SyncRecord, document: LedgerDocument, currency: str, customer_id: str | None, mappings: Mappings
) -> None:
    """Records what the ledger now holds for this source document, and which mapping made it."""
    record.ledger_id = document.id
    record.ledger_version = document.version
    record.ledger_number = document.number
    record.ledger_total = Money.from_decimal(document.total, currency).minor
    record.ledger_customer_id = customer_id
    record.mapping_version = mappings.connection.mapping_version


def _summarised(build: Callable[[], str], current: str | None) -> str | None:
    """The export summary ``build`` makes, or ``current`` if it fails: a summary serves the nightly
    export only, and must never fail or park a sync."""
    try:
        return build()
    except Exception as error:  # noqa: BLE001 - any failure here is the export's, not the sync's
        logger.warning("export summary not built", extra={"error": type(error).__name__})
        return current


def _summary(document: Document) -> str:
    if isinstance(document, Refund):
        return refund_summary(document)
    if isinstance(document, CreditNote):
        return credit_note_summary(document)
    return invoice_summary(document)


def _describe_refund(refund: Refund) -> str:
    invoice = f", invoice {refund.invoice_source_id}" if refund.invoice_source_id else ""
    return (
        f"{refund.money(refund.total)} refunded so far on charge {refund.charge_id} "
        f"(customer {refund.customer_id or 'unknown'}{invoice})"
    )


def find_customer(invoice: Invoice, ledger: LedgerPort) -> tuple[LedgerContact | None, str]:
    """The ledger customer this invoice's customer is found as by name (read only), and the name it
    has or would be created with. A same-named customer created for another source customer is
    never reused: this one then goes by ``Name (cus_…)``."""
    source_id, name = invoice.customer.source_id, invoice.customer.display_name
    found = ledger.find_customer(name)
    if found is not None and found.reference not in {None, "", source_id}:
        name = f"{name} ({source_id})"
        found = ledger.find_customer(name)
    return found, name


def draft_digest(draft: InvoiceDraft) -> str:
    """What a ledger draft says, as a short digest (its fields are all plain values)."""
    return hashlib.sha256(repr(draft).encode()).hexdigest()[:32]


def remapped_draft(
    invoice: Invoice, record: SyncRecord, mappings: Mappings, customer_rule: MappingRule | None
) -> InvoiceDraft | None:
    """The draft today's mapping gives an invoice synced under an older mapping version, on the
    customer it was synced to; None when the version is the same, the invoice is void, or today's
    mapping cannot map it (a replay then leaves the ledger's document as it is)."""
    if invoice.status is InvoiceStatus.VOID or record.mapping_version == mappings.connection.mapping_version:
        return None
    try:
        resolved = resolve(invoice, mappings, customer_rule)
    except ParkError:
        return None
    return replace(resolved.draft, customer_id=resolved.customer_id or record.ledger_customer_id or "")


@dataclass
class RefundTally:
    """The refunds on one invoice, kept on its sync record (``refunds``): what Stripe refunded per
    charge, what credit notes gave back as money, and the cash each refund record books (reserved
    before its ledger write, so two refunds of one charge can never both book the same money)."""

    charges: dict[str, int]
    credit: dict[str, int]
    booked: dict[str, int]

    @classmethod
    def of(cls, record: SyncRecord) -> RefundTally:
        data = json.loads(record.refunds or "{}")
        return cls(data.get("charges", {}), data.get("credit", {}), data.get("booked", {}))

    def dump(self) -> str:
        return json.dumps(
            {"charges": self.charges, "credit": self.credit, "booked": self.booked}, sort_keys=True
        )

    @property
    def unaccounted(self) -> int:
        """Cash refunded at the source that neither a credit note nor a refund document covers."""
        return sum(self.charges.values()) - sum(self.credit.values()) - sum(self.booked.values())


@dataclass
class _InvoiceWork:
    """An invoice on its way into the ledger: what it takes to create it and then record it. A
    fresh create is held back in one of these to travel in its connection's batch request."""

    message: SyncMessage
    invoice: Invoice
    record: SyncRecord
    revision: int
    mappings: Mappings
    ledger: LedgerPort
    draft: InvoiceDraft
    content_hash: str


class MappingSource(Protocol):
    def mappings(self, connection_id: str) -> Mappings | None: ...

    def customer_rule(self, connection_id: str, source_id: str) -> MappingRule | None: ...

    def learned_customer(self, connection_id: str, source_id: str, ledger_id: str, name: str) -> None: ...

    def forget(self, connection_id: str) -> None: ...


class Archive(Protocol):
    def get(self, key: str) -> bytes: ...

    def put_bundle(
        self, source: str, connection_id: str, day: date, events: Sequence[BundledEvent]
    ) -> list[str]: ...


class Alerts(Protocol):
    def publish(self, subject: str, text: str, details: dict[str, object]) -> None: ...


LedgerFactory = Callable[[Mappings], LedgerPort]
# Per connection, the (requests, throttled) ledger calls made since it was last asked.
LedgerUsage = Callable[[], Mapping[str, tuple[int, int]]]


class PushService:
    def __init__(
        self,
        *,
        state: SyncStateStore,
        mappings: MappingSource,
        archive: Archive,
        alerts: Alerts,
        ledger_for: LedgerFactory,
        intent_timeout: timedelta = timedelta(seconds=120),
        reserve_seconds: float = 20.0,
        refund_settle: timedelta = timedelta(seconds=300),
        ledger_usage: LedgerUsage | None = None,
        payouts: PayoutService | None = None,
    ) -> None:
        self.state = state
        # Stripe payouts as bank deposits; None where push is built without a Stripe reader.
        self.payouts = payouts
        self.mappings = mappings
        self.archive = archive
        self.alerts = alerts
        self.ledger_for = ledger_for
        # Longer than one push invocation may run: an intent younger than this may still be in
        # the hands of a live worker.
        self.intent_timeout = intent_timeout
        # No new message starts with less than this left of the invocation.
        self.reserve_seconds = reserve_seconds
        # Stripe sends a credit note's refund as charge.refunded too, in any order: cash that no
        # credit note covers yet is booked only once the refund is this old.
        self.refund_settle = refund_settle
        self.ledger_usage = ledger_usage

    def handle_batch(
        self, messages: Sequence[SyncMessage], *, time_left: Callable[[], float] | None = None
    ) -> list[PushResult | Exception]:
        """Several snapshots at once (an SQS batch): each converges as ``handle`` would, except that
        fresh invoice creates of one connection go to the ledger together, as batch requests of
        the ledger's size. Each message gets its own outcome; an exception sends it back.

        Two snapshots of one document in the batch (finalized and paid, sent together) are one
        job: the newest carries everything, the others are superseded. ``time_left`` (seconds)
        stops new work short of the invocation's end; what is not started goes back to the queue.
        """
        carried = self.archive_carried(messages)
        newest: dict[tuple[str, str, str], int] = {}
        for index, message in enumerate(carried):
            if isinstance(message, SyncMessage) and message.subject is not None:
                key = (message.connection_id, _kind(message.subject), message.subject.source_id)
                if key not in newest or messages[newest[key]].version < message.version:
                    newest[key] = index
        results: list[PushResult | Exception] = []
        waiting: dict[int, list[tuple[int, _InvoiceWork]]] = {}
        for index, message in enumerate(carried):
            deferred: list[_InvoiceWork] = []
            if isinstance(message, Exception):
                results.append(message)  # not archived: nothing else may happen to it
                continue
            document = message.subject
            if (
                document is not None
                and newest[(message.connection_id, _kind(document), document.source_id)] != index
            ):
                results.append(
                    PushResult(Outcome.STALE, document.source_id, reason="superseded in its batch")
                )
                continue
            if time_left is not None and time_left() < self.reserve_seconds:
                results.append(TransientError("not enough time left in this invocation"))
                continue
            try:
                results.append(self.handle(message, defer=deferred))
            except Exception as error:  # noqa: BLE001 - any failure hands this message back to SQS
                results.append(error)
            for item in deferred:
                waiting.setdefault(id(item.ledger), []).append((index, item))
        for group in waiting.values():
            size = max(group[0][1].ledger.batch_size, 1)
            for start in range(0, len(group), size):
                self._create_batch(group[start : start + size], results)
        self.count_ledger_use()
        return results

    def archive_carried(self, messages: Sequence[SyncMessage]) -> list[SyncMessage | Exception]:
        """Archives the raw bodies that travel with ``messages`` (intake's), one S3 object per
        source, connection and day of arrival, before anything else happens to them. Each message
        comes back with its archive key in place of its body (as it was, if it carried none), or as
        the error that stopped its group being archived: that message goes back to the queue."""
        out: list[SyncMessage | Exception] = list(messages)
        groups: dict[tuple[str, str, date], list[int]] = {}
        for index, message in enumerate(messages):
            if message.raw is not None and message.received_at is not None:
                day = message.received_at.astimezone(UTC).date()
                groups.setdefault((message.source, message.connection_id, day), []).append(index)
        for (source, connection_id, day), indexes in groups.items():
            events = [
                BundledEvent(
                    event_id=messages[i].event_id,
                    event_type=messages[i].event_type,
                    received_at=messages[i].received_at or utcnow(),
                    body=(messages[i].raw or "").encode("utf-8"),
                )
                for i in indexes
            ]
            try:
                keys = self.archive.put_bundle(source, connection_id, day, events)
            except Exception as error:  # noqa: BLE001 - the group goes back to the queue, whole
                logger.warning("raw bodies not archived", extra={"events": len(indexes), "error": str(error)})
                for index in indexes:
                    out[index] = error
                continue
            for index, key in zip(indexes, keys, strict=True):
                out[index] = messages[index].model_copy(
                    update={"archive_key": key, "raw": None, "received_at": None}
                )
        return out

    def count_ledger_use(self) -> None:
        """Adds the batch's ledger requests to each connection's day (what ``status`` shows against
        the ledger's daily limit). A tally, not a record: a failed write loses a few counts and
        must not send finished work back to the queue, so it is only logged."""
        if self.ledger_usage is None:
            return
        day = utcnow().date().isoformat()
        for connection_id, (requests, throttled) in self.ledger_usage().items():
            try:
                self.state.add_ledger_use(connection_id, day, requests, throttled)
            except TransientError as error:
                logger.warning(
                    "ledger use not counted", extra={"connection_id": connection_id, "error": str(error)}
                )

    def _create_batch(
        self, chunk: list[tuple[int, _InvoiceWork]], results: list[PushResult | Exception]
    ) -> None:
        ready: list[tuple[int, _InvoiceWork]] = []
        for index, item in chunk:
            record = item.record
            record.idempotency_key = idempotency_key(
                record.connection_id, "invoice", record.source_id, "create"
            )
            record.status = SyncStatus.PENDING
            try:
                item.revision = self.state.save(record, item.revision)
            except Exception as error:  # noqa: BLE001 - this one goes back to the queue, the rest go on
                results[index] = error
                continue
            ready.append((index, item))
        if not ready:
            return
        ledger = ready[0][1].ledger
        try:
            outcomes = ledger.create_invoices(
                [
                    (item.draft, request_key(item.record.idempotency_key or "", item.draft))
                    for _, item in ready
                ]
            )
        except Exception as error:  # noqa: BLE001 - the request failed as a whole: all of it retries
            for index, _ in ready:
                results[index] = error
            return
        for (index, item), outcome in zip(ready, outcomes, strict=True):
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                results[index] = self._record_invoice(item, outcome)
            except InvoiceSyncError as error:
                try:
                    results[index] = self._settle(
                        item.message, "invoice", item.record.source_id, item.record, error
                    )
                except Exception as unsettled:  # noqa: BLE001 - transient: back to the queue
                    results[index] = unsettled
            except Exception as error:  # noqa: BLE001 - back to the queue
                results[index] = error

    def handle(self, message: SyncMessage, *, defer: list[_InvoiceWork] | None = None) -> PushResult:
        """Converges the ledger on one snapshot. With ``defer``, a fresh invoice create is not sent
        but added there, for ``handle_batch`` to send with others."""
        logger.set_correlation_id(message.event_id)
        if message.payout is not None:
            return self._converge_payout(message, message.payout)
        record: SyncRecord | None = None
        kind = _kind(message.document)
        source_id = (
            message.document.source_id if message.document else message.archive_key or message.event_id
        )
        try:
            subject = message.document or self._from_archive(message)
            if isinstance(subject, Payout):  # a payout event that travelled without its snapshot
                return self._converge_payout(message, subject)
            document = subject
            kind = _kind(document)
            source_id = document.source_id
            record, revision = self.state.get(message.connection_id, kind, source_id)
            if record and record.source_version > message.version:
                logger.info("older snapshot skipped", extra={"source_id": source_id})
                return PushResult(Outcome.STALE, source_id, record.ledger_id)
            record = record or SyncRecord(connection_id=message.connection_id, kind=kind, source_id=source_id)
            record.source_number = document.number
            record.currency = document.currency
            record.source_total = document.total
            # What the nightly export writes, kept whether the document syncs or parks; the
            # ledger codes are added once the mapping has resolved them.
            if record.summary is None or record.content_hash != document.content_hash():
                # A new snapshot's figures; the same one keeps what was stored, with the ledger
                # codes its sync added (a redelivery must not strip them).
                record.summary = _summarised(partial(_summary, document), record.summary)
            record.event_id = message.event_id
            record.archive_key = message.archive_key
            mappings = self._mappings_for(message, record)
            if isinstance(document, Refund):
                return self._converge_refund(message, document, record, revision, mappings)
            if isinstance(document, CreditNote):
                return self._converge_credit_note(message, document, record, revision, mappings)
            return self._converge(message, document, record, revision, mappings, defer)
        except InvoiceSyncError as error:
            return self._settle(message, kind, source_id, record, error)

    def _mappings_for(self, message: SyncMessage, record: SyncRecord) -> Mappings:
        """The connection's mappings; parks when the connection is unknown or inactive."""
        if record.status is SyncStatus.NEEDS_MAPPING or message.remap:
            # Parked for a rule someone has likely just added (a re-drive after an import), or
            # replayed to apply today's mapping: read the rules afresh, not through the warm
            # cache, which could still hold the version before the change.
            self.mappings.forget(message.connection_id)
        mappings = self.mappings.mappings(message.connection_id)
        if mappings is None or not mappings.connection.active:
            raise ParkError(
                "connection not configured", f"connection {message.connection_id} is unknown or inactive"
            )
        return mappings

    def _converge_payout(self, message: SyncMessage, payout: Payout) -> PushResult:
        """A Stripe payout: one bank deposit in the ledger (``sync.payouts``), under its own record."""
        record: SyncRecord | None = None
        try:
            record, revision = self.state.get(message.connection_id, "payout", payout.source_id)
            if record and record.source_version > message.version:
                logger.info("older snapshot skipped", extra={"source_id": payout.source_id})
                return PushResult(Outcome.STALE, payout.source_id, record.ledger_id)
            record = record or SyncRecord(
                connection_id=message.connection_id, kind="payout", source_id=payout.source_id
            )
            record.event_id = message.event_id
            record.archive_key = message.archive_key
            mappings = self._mappings_for(message, record)
            if self.payouts is None:
                raise ParkError("payout deposits not available", "this push has no Stripe reader for payouts")
            return self.payouts.converge(message, payout, record, revision, mappings, self.ledger_for)
        except InvoiceSyncError as error:
            return self._settle(message, "payout", payout.source_id, record, error)

    def _settle(
        self,
        message: SyncMessage,
        kind: DocumentKind,
        source_id: str,
        record: SyncRecord | None,
        error: InvoiceSyncError,
    ) -> PushResult:
        """The one place an error meets its outcome: parked (with its alert), or raised to retry."""
        park = park_reason(error)
        if park is None:
            raise error  # transient: back to the queue
        # Re-read: the failed step may have saved the record (an intent) before it raised.
        current, current_revision = self.state.get(message.connection_id, kind, source_id)
        parked = (
            current
            or record
            or SyncRecord(connection_id=message.connection_id, kind=kind, source_id=source_id)
        )
        if message.version >= parked.source_version:
            parked.archive_key = message.archive_key
            if record is not None and record.summary:
                parked.summary = record.summary
        self._park(parked, current_revision, message.version, park)
        return PushResult(Outcome.PARKED, source_id, parked.ledger_id, park.reason)

    # --- invoice ----------------------------------------------------------------------------------

    def _converge(
        self,
        message: SyncMessage,
        invoice: Invoice,
        record: SyncRecord,
        revision: int,
        mappings: Mappings,
        defer: list[_InvoiceWork] | None = None,
    ) -> PushResult:
        content_hash = invoice.content_hash()
        if invoice.status is InvoiceStatus.DRAFT:
            return self._finish(
                record, revision, message, content_hash, SyncStatus.SKIPPED, "draft: not in the books"
            )
        ledger = self.ledger_for(mappings)
        if (
            record.status is SyncStatus.SYNCED
            and record.content_hash == content_hash
            and record.ledger_id
            and not (message.remap and self._remaps(message.connection_id, invoice, record, mappings))
        ):
            # Same snapshot again (a duplicate delivery, a retry): the invoice is done, but a crash
            # may have come between it and its payments, so those are still checked.
            if message.version > record.source_version:
                record.source_version = message.version
                revision = self.state.save(record, revision)
            if invoice.status is not InvoiceStatus.VOID:
                self._payments(invoice, record, mappings, ledger)
            return PushResult(Outcome.UNCHANGED, invoice.source_id, record.ledger_id)
        check_totals(invoice)
        if invoice.status is InvoiceStatus.VOID:
            return self._void(
                message,
                invoice,
                record,
                revision,
                content_hash,
                get=ledger.get_invoice,
                find=ledger.find_invoice,
                void=ledger.void_invoice,
            )
        if not invoice.number:
            # The number is how the ledger copy is found again after a crash: without one,
            # exactly-once would rest on the ledger's short idempotency window alone.
            raise InvalidSnapshot(
                "invoice has no number", "a finalized invoice needs its number in the ledger"
            )
        customer_rule = self.mappings.customer_rule(message.connection_id, invoice.customer.source_id)
        resolved = resolve(invoice, mappings, customer_rule)
        customer_id = resolved.customer_id or self._customer(invoice, mappings, ledger)
        draft = replace(resolved.draft, customer_id=customer_id)
        if record.ledger_id:
            document = self._update(message, invoice, record, ledger, draft, content_hash)
        elif defer is not None and record.idempotency_key is None:
            # A first create, with nothing to look up: it can travel in a batch request.
            defer.append(
                _InvoiceWork(message, invoice, record, revision, mappings, ledger, draft, content_hash)
            )
            return PushResult(Outcome.DEFERRED, invoice.source_id)
        else:
            document, revision, adopted = self._create_once(
                message,
                invoice.source_id,
                invoice.number,
                record,
                revision,
                find=ledger.find_invoice,
                create=lambda key: ledger.create_invoice(draft, key),
                marker_text=draft.private_note,
                request=draft,
            )
            if adopted:
                # What an earlier attempt created (or the ledger's replay of it) reflects the
                # snapshot of that attempt; bring it up to this one.
                record.ledger_id, record.ledger_version = document.id, document.version
                document = self._update(message, invoice, record, ledger, draft, content_hash)
        return self._record_invoice(
            _InvoiceWork(message, invoice, record, revision, mappings, ledger, draft, content_hash), document
        )

    def _remaps(self, connection_id: str, invoice: Invoice, record: SyncRecord, mappings: Mappings) -> bool:
        """Whether a replay with today's mapping writes this synced invoice again: only when a newer
        mapping version maps its very snapshot onto a different document."""
        customer_rule = self.mappings.customer_rule(connection_id, invoice.customer.source_id)
        draft = remapped_draft(invoice, record, mappings, customer_rule)
        return draft is not None and draft_digest(draft) != record.draft_hash

    def _record_invoice(self, item: _InvoiceWork, document: LedgerDocument) -> PushResult:
        """The ledger holds the invoice: record what it says, alert on a total that differs, then
        bring its payments in."""
        invoice, record = item.invoice, item.record
        _holds(record, document, invoice.currency, item.draft.customer_id, item.mappings)
        record.line_products = json.dumps({line.source_id: line.product_id for line in invoice.lines})
        record.draft_hash = draft_digest(item.draft)
        record.summary = _summarised(partial(invoice_summary, invoice, item.draft), record.summary)
        differs = record.ledger_total != invoice.total
        if differs and record.alerted_reason != TOTAL_DIFFERS:
            # The document exists and stays: a person decides whether the ledger's figure stands.
            self._publish(
                record,
                TOTAL_DIFFERS,
                f"ledger shows {document.total} {invoice.currency}, source {invoice.money(invoice.total)}",
            )
        record.alerted_reason = TOTAL_DIFFERS if differs else None
        result = self._finish(record, item.revision, item.message, item.content_hash, SyncStatus.SYNCED, None)
        # The ledger's answer is the invoice as it stands now: its payments need no read of it.
        self._payments(invoice, record, item.mappings, item.ledger, document)
        return result

    def _update(
        self,
        message: SyncMessage,
        invoice: Invoice,
        record: SyncRecord,
        ledger: LedgerPort,
        draft: InvoiceDraft,
        content_hash: str,
    ) -> LedgerDocument:
        assert record.ledger_id is not None
        key = idempotency_key(
            message.connection_id,
            "invoice",
            invoice.source_id,
            "update",
            content_hash,
            record.ledger_version or "",
        )
        try:
            return ledger.update_invoice(record.ledger_id, record.ledger_version, draft, key)
        except StaleObject:
            # Someone edited it in the ledger; the source snapshot wins, on the fresh version.
            current = ledger.get_invoice(record.ledger_id)
            key = idempotency_key(key, current.version or "")
            return ledger.update_invoice(record.ledger_id, current.version, draft, key)

    def _in_flight(self, record: SyncRecord) -> bool:
        return intent_in_flight(record, self.intent_timeout)

    def _create_once(
        self,
        message: SyncMessage,
        source_id: str,
        number: str | None,
        record: SyncRecord,
        revision: int,
        *,
        find: Callable[[str], LedgerDocument | None],
        create: Callable[[str], LedgerDocument],
        marker_text: str,
        request: object,
    ) -> tuple[LedgerDocument, int, bool]:
        """Creates the ledger document unless an earlier attempt did; says whether it adopted one."""
        return create_once(
            self.state,
            self.intent_timeout,
            message.connection_id,
            source_id,
            number,
            record,
            revision,
            find=find,
            create=create,
            adopt=partial(self._marked, marker_text=marker_text),
            request=request,
        )

    @staticmethod
    def _marked(document: LedgerDocument | None, marker_text: str) -> LedgerDocument | None:
        """A found document counts as ours only if it carries our marker; never adopt a stranger's."""
        if document and (document.private_note or "").strip() == marker_text:
            return document
        return None

    def _void(
        self,
        message: SyncMessage,
        document: Billed,
        record: SyncRecord,
        revision: int,
        content_hash: str,
        *,
        get: Callable[[str], LedgerDocument],
        find: Callable[[str], LedgerDocument | None],
        void: Callable[[str, str | None, str], LedgerDocument],
        before_void: Callable[[LedgerDocument], None] = lambda _: None,
    ) -> PushResult:
        """Voids the ledger copy of a document voided at the source (invoices and credit notes)."""
        found = None
        if record.ledger_id:
            found = get(record.ledger_id)
        elif record.idempotency_key and document.number:
            found = self._marked(find(document.number), marker(document.source, document.source_id))
        if found is None:
            if self._in_flight(record):
                # A worker is creating it right now: void it once it exists, not before.
                raise TransientError(f"{record.kind} {document.source_id} is being created by another worker")
            return self._finish(
                record,
                revision,
                message,
                content_hash,
                SyncStatus.SKIPPED,
                "voided before it reached the ledger",
            )
        if not found.voided:
            before_void(found)
            key = idempotency_key(message.connection_id, record.kind, document.source_id, "void")
            found = void(found.id, found.version, key)
        record.ledger_id = found.id
        record.ledger_version = found.version
        record.ledger_total = 0
        record.alerted_reason = None
        return self._finish(record, revision, message, content_hash, SyncStatus.SYNCED, None)

    def _customer(self, invoice: Invoice, mappings: Mappings, ledger: LedgerPort) -> str:
        """Finds or creates the ledger customer, never merging two source customers by name.

        A ledger customer of the same name is adopted when nobody created it for another source
        customer (a customer the company already had); if it belongs to another source customer,
        this one gets its own, named with its source id.
        """
        source_id = invoice.customer.source_id
        found, name = find_customer(invoice, ledger)
        if found is None:
            key = idempotency_key(mappings.connection.connection_id, "customer", source_id, name)
            try:
                found = ledger.create_customer(name, invoice.customer.email, invoice.currency, source_id, key)
            except DuplicateName:
                # Created a moment ago by a worker holding another invoice of this customer; if
                # not, a vendor or employee has the name, and the error parks the invoice.
                found = ledger.find_customer(name)
                if found is None:
                    raise
        self.mappings.learned_customer(mappings.connection.connection_id, source_id, found.id, name)
        return found.id

    # --- credit notes -----------------------------------------------------------------------------

    def _converge_credit_note(
        self, message: SyncMessage, note: CreditNote, record: SyncRecord, revision: int, mappings: Mappings
    ) -> PushResult:
        """A credit note: created once against its invoice's customer and items, then applied to
        the invoice for as much as is still open there (the rest stays customer credit)."""
        content_hash = note.content_hash()
        ledger = self.ledger_for(mappings)
        if record.status is SyncStatus.SYNCED and record.ledger_id and note.status is CreditNoteStatus.ISSUED:
            # Stripe lets only the memo change on an issued credit note: nothing to redo.
            if message.version > record.source_version:
                record.source_version = message.version
                self.state.save(record, revision)
            return PushResult(Outcome.UNCHANGED, note.source_id, record.ledger_id)
        invoice_record = (
            self.state.get(message.connection_id, "invoice", note.invoice_source_id)[0]
            if note.invoice_source_id
            else None
        )
        if invoice_record is not None and invoice_record.status.parked:
            raise ParkError(
                "credit note waits for its invoice",
                f"invoice {invoice_record.source_number or note.invoice_source_id} is parked: "
                f"{invoice_record.last_error}; re-drive the credit note after it",
            )
        if (
            invoice_record is None
            or invoice_record.status is not SyncStatus.SYNCED
            or not invoice_record.ledger_id
        ):
            # Its invoice has not reached the ledger yet (the queue reorders): come back later.
            raise TransientError(f"credit note {note.source_id} waits for invoice {note.invoice_source_id}")
        check_totals(note)
        if note.status is CreditNoteStatus.VOID:
            return self._void(
                message,
                note,
                record,
                revision,
                content_hash,
                get=ledger.get_credit_note,
                find=ledger.find_credit_note,
                void=ledger.void_credit_note,
                before_void=self._refuse_applied_credit,
            )
        products = json.loads(invoice_record.line_products or "{}")
        unknown = [
            line.invoice_line_id
            for line in note.lines
            if not line.product_id and line.invoice_line_id and line.invoice_line_id not in products
        ]
        if unknown:
            # Guessing would post the credit to another revenue account than the sale it undoes.
            raise InvalidSnapshot(
                "credit note line not on its invoice",
                f"lines {', '.join(unknown)} are not among the synced lines of {note.invoice_source_id}",
            )
        lines = tuple(
            line.model_copy(
                update={"product_id": line.product_id or products.get(line.invoice_line_id or "")}
            )
            for line in note.lines
        )
        customer = MappingRule(
            kind=RuleKind.CUSTOMER,
            source_value=note.customer.source_id,
            ledger_id=invoice_record.ledger_customer_id or "",
        )
        resolved = resolve(note.model_copy(update={"lines": lines}), mappings, customer)
        record.summary = _summarised(partial(credit_note_summary, note, resolved.draft), record.summary)
        if note.refunded > 0:
            self._count_credit_refund(message.connection_id, note)
        document, revision, _ = self._create_once(
            message,
            note.source_id,
            note.number,
            record,
            revision,
            find=ledger.find_credit_note,
            create=lambda key: ledger.create_credit_note(resolved.draft, key),
            marker_text=resolved.draft.private_note,
            request=resolved.draft,
        )
        _holds(record, document, note.currency, invoice_record.ledger_customer_id, mappings)
        self._apply_credit(message, note, record, invoice_record, ledger)
        if note.refunded > 0:
            connection = mappings.connection
            self._pay_out(
                ledger,
                ledger.get_credit_note(document.id),
                PaymentDraft(
                    source_id=note.source_id,
                    customer_id=invoice_record.ledger_customer_id or "",
                    invoice_id=document.id,
                    amount=note.money(note.refunded).to_decimal(),
                    currency=note.currency,
                    paid_on=note.issued_on,
                    private_note=marker(note.source, f"{note.source_id}:refund"),
                    account=connection.refund_from_account or connection.payment_account,
                ),
                idempotency_key(message.connection_id, "credit_note", note.source_id, "refund"),
            )
        record.alerted_reason = None
        return self._finish(record, revision, message, content_hash, SyncStatus.SYNCED, None)

    def _apply_credit(
        self,
        message: SyncMessage,
        note: CreditNote,
        record: SyncRecord,
        invoice_record: SyncRecord,
        ledger: LedgerPort,
    ) -> None:
        """Applies the credit once: credit already used in the ledger means an earlier attempt did."""
        assert record.ledger_id is not None
        assert invoice_record.ledger_id is not None
        credit = ledger.get_credit_note(record.ledger_id)
        if credit.balance < credit.total:
            return  # applied before (this attempt's predecessor died after applying)
        invoice = ledger.get_invoice(invoice_record.ledger_id)
        # Only what Stripe took off the invoice (pre-payment): credit it refunded or put on the
        # customer's balance does not reduce what the invoice owes.
        amount = min(credit.balance, invoice.balance, note.money(note.for_invoice).to_decimal())
        if amount <= Decimal(0):
            return  # the invoice is settled: the credit stays with the customer (a refund or later use)
        key = idempotency_key(message.connection_id, "credit_note", note.source_id, "apply")
        ledger.apply_credit_note(credit.id, invoice.id, invoice_record.ledger_customer_id or "", amount, key)

    def _count_credit_refund(self, connection_id: str, note: CreditNote) -> None:
        """Counts the money a credit note gives back on its invoice, so that Stripe's charge.refunded
        for the same money books nothing more. Refund documents booked before it arrived for cash
        it also covers would take the revenue back twice: that is parked for a person."""
        assert note.invoice_source_id is not None
        invoice_record, invoice_revision = self.state.get(connection_id, "invoice", note.invoice_source_id)
        assert invoice_record is not None
        tally = RefundTally.of(invoice_record)
        if note.source_id in tally.credit:
            return
        tally.credit[note.source_id] = note.refunded
        booked = sum(tally.booked.values())
        if booked > 0 and tally.unaccounted < 0:
            raise ParkError(
                "credit note refund booked already",
                f"{note.money(booked)} refunded on invoice {invoice_record.source_number} was booked "
                f"as refund documents before credit note {note.number or note.source_id} arrived, "
                f"and with its {note.money(note.refunded)} more is given back than the "
                f"{note.money(sum(tally.charges.values()))} refunded: void the refund document it "
                "duplicates, then re-drive",
            )
        invoice_record.refunds = tally.dump()
        self.state.save(invoice_record, invoice_revision)

    @staticmethod
    def _refuse_applied_credit(document: LedgerDocument) -> None:
        if document.balance < document.total:
            # Ledgers refuse to void applied credit; undoing an application is a bookkeeping
            # decision, not something to guess.
            raise ParkError(
                "credit note applied in the ledger",
                f"void {document.number or document.id} by hand after removing its application",
            )

    # --- refunds ----------------------------------------------------------------------------------

    def _converge_refund(
        self, message: SyncMessage, refund: Refund, record: SyncRecord, revision: int, mappings: Mappings
    ) -> PushResult:
        """Books the cash a refund gives back that no credit note already gives back: one refund
        document on the refunded invoice's customer (QBO RefundReceipt; Xero and FreshBooks a credit
        note paid out), exactly once, whatever the order of the refund and its credit note."""
        content_hash = refund.content_hash()
        if record.status in {SyncStatus.SYNCED, SyncStatus.SKIPPED} and record.content_hash == content_hash:
            return PushResult(Outcome.UNCHANGED, refund.source_id, record.ledger_id)
        settling = utcnow().timestamp() - refund.refunded_at < self.refund_settle.total_seconds()
        invoice_id = refund.invoice_source_id or self.state.invoice_of_charge(
            message.connection_id, [c for c in (refund.charge_id, refund.payment_intent) if c]
        )
        invoice_record, invoice_revision = (
            self.state.get(message.connection_id, "invoice", invoice_id) if invoice_id else (None, 0)
        )
        if invoice_record is not None and invoice_record.status.parked:
            raise ParkError(
                "refund waits for its invoice",
                f"invoice {invoice_record.source_number or invoice_id} is parked: "
                f"{invoice_record.last_error}; re-drive the refund after it",
            )
        synced = invoice_record is not None and invoice_record.status is SyncStatus.SYNCED
        if invoice_record is None or not synced or not invoice_record.ledger_id:
            if settling:
                raise TransientError(f"refund {refund.source_id} waits for the invoice it refunds")
            raise ParkError(
                "refund not linked to a synced invoice",
                f"{_describe_refund(refund)}: no invoice in the ledger is known to have been paid by this "
                "charge; record it by hand, or re-drive it once its invoice has synced",
            )
        tally = RefundTally.of(invoice_record)
        amount = tally.booked.get(refund.source_id)
        if amount is None:
            # Reserve this refund's share on the invoice before any ledger write: a concurrent
            # refund of the same charge then reads it (or loses the conditional write and retries).
            paid_back = max(refund.total, tally.charges.get(refund.charge_id, 0))
            new_cash = paid_back - tally.charges.get(refund.charge_id, 0)
            owed = tally.unaccounted + new_cash
            amount = max(0, min(new_cash, owed))
            if amount > 0 and settling:
                raise TransientError(
                    f"refund {refund.source_id} waits for a credit note that may give the money back"
                )
            tally.charges[refund.charge_id] = paid_back
            tally.booked[refund.source_id] = amount
            invoice_record.refunds = tally.dump()
            self.state.save(invoice_record, invoice_revision)
        if amount == 0:
            note = (
                f"given back through credit notes {', '.join(sorted(tally.credit))}"
                if tally.credit
                else "already booked with a later refund of the charge"
            )
            return self._finish(record, revision, message, content_hash, SyncStatus.SKIPPED, note)
        document, revision = self._book_refund(
            message, refund, record, revision, mappings, invoice_record, amount
        )
        _holds(record, document, refund.currency, invoice_record.ledger_customer_id, mappings)
        record.alerted_reason = None
        return self._finish(record, revision, message, content_hash, SyncStatus.SYNCED, None)

    def _book_refund(
        self,
        message: SyncMessage,
        refund: Refund,
        record: SyncRecord,
        revision: int,
        mappings: Mappings,
        invoice_record: SyncRecord,
        amount: int,
    ) -> tuple[LedgerDocument, int]:
        """Creates the refund document once, then pays it out where the ledger books a credit."""
        connection = mappings.connection
        if not (connection.refund_item_id or connection.refund_account):
            raise MappingMissing(["refund item: set refund_item_id (Xero: refund_account) on the connection"])
        ledger = self.ledger_for(mappings)
        cash = refund.money(amount).to_decimal()
        number = "RF-" + hashlib.sha256(refund.source_id.encode()).hexdigest()[:10].upper()
        paid_from = connection.refund_from_account or connection.payment_account
        draft = InvoiceDraft(
            source_id=refund.source_id,
            customer_id=invoice_record.ledger_customer_id or "",
            number=number,
            issued_on=refund.refunded_on,
            due_on=None,
            currency=refund.currency,
            lines=(
                LineDraft(
                    item_id=connection.refund_item_id or "",
                    description=f"Refund on {invoice_record.source_number or invoice_record.source_id} "
                    f"(charge {refund.charge_id})",
                    quantity=1,
                    amount=cash,
                    tax_code=connection.no_tax_code,
                    account=connection.refund_account,
                ),
            ),
            discount=Decimal(0),
            tax=Decimal(0),
            total=cash,
            memo=f"Refund of {refund.money(amount)} on invoice {invoice_record.source_number or ''}".strip(),
            private_note=marker(refund.source, refund.source_id),
        )
        document, revision, _ = self._create_once(
            message,
            refund.source_id,
            number,
            record,
            revision,
            find=ledger.find_refund,
            create=lambda key: ledger.create_refund(draft, paid_from, key),
            marker_text=draft.private_note,
            request=(draft, paid_from),
        )
        if document.balance > Decimal(0):
            # A credit note (Xero, FreshBooks): the money leaves by paying it out. Its only payout
            # is this one, so a zero balance means an earlier attempt paid it. The record names the
            # credit note first, so that a payout the ledger cannot make is parked pointing at it.
            record.ledger_id, record.ledger_number = document.id, document.number
            revision = self.state.save(record, revision)
            self._pay_out(
                ledger,
                document,
                PaymentDraft(
                    source_id=refund.source_id,
                    customer_id=draft.customer_id,
                    invoice_id=document.id,
                    amount=document.balance,
                    currency=refund.currency,
                    paid_on=refund.refunded_on,
                    private_note=marker(refund.source, f"{refund.source_id}:payout"),
                    account=paid_from,
                ),
                idempotency_key(message.connection_id, "refund", refund.source_id, "payout"),
            )
            document = ledger.get_refund(document.id)
        return document, revision

    @staticmethod
    def _pay_out(ledger: LedgerPort, credit: LedgerDocument, draft: PaymentDraft, key: str) -> None:
        """Pays money out of a credit document once: a payout carrying this marker means an earlier
        attempt made it (the crash came before the state write)."""
        for payment_id in credit.linked_payment_ids:
            if (ledger.get_payment(payment_id).private_note or "").strip() == draft.private_note:
                return
        ledger.pay_out_credit(draft, key)

    # --- payments ---------------------------------------------------------------------------------

    def _payments(
        self,
        invoice: Invoice,
        invoice_record: SyncRecord,
        mappings: Mappings,
        ledger: LedgerPort,
        ledger_invoice: LedgerDocument | None = None,
    ) -> None:
        """Each payment under its own record: one that cannot be booked parks itself, not the invoice.
        ``ledger_invoice`` is the ledger's invoice as it stands, when the caller has just been told
        (its create or update); otherwise it is read before the first payment to book, and read
        again only before a further one (each booking changes its balance and payments)."""
        if not invoice.payments or invoice_record.ledger_id is None or not invoice_record.ledger_customer_id:
            return
        for payment in invoice.payments:
            record, revision = self.state.get(invoice_record.connection_id, "payment", payment.source_id)
            if record and record.status in {SyncStatus.SYNCED, SyncStatus.SKIPPED}:
                continue
            if record is None and payment.charges:
                # So that a refund of this charge finds the invoice it gives money back on.
                self.state.link_charges(invoice_record.connection_id, payment.charges, invoice.source_id)
            record = record or SyncRecord(
                connection_id=invoice_record.connection_id, kind="payment", source_id=payment.source_id
            )
            record.archive_key = invoice_record.archive_key
            record.currency = payment.currency
            record.source_total = payment.amount
            record.source_number = invoice.number
            record.summary = _summarised(partial(payment_summary, payment, invoice), record.summary)
            try:
                ledger_invoice = ledger_invoice or ledger.get_invoice(invoice_record.ledger_id)
                ledger_invoice = self._book_payment(
                    invoice, invoice_record, payment, record, revision, mappings, ledger, ledger_invoice
                )
            except InvoiceSyncError as error:
                park = park_reason(error)
                if park is None:
                    raise
                current, current_revision = self.state.get(
                    invoice_record.connection_id, "payment", payment.source_id
                )
                self._park(current or record, current_revision, 0, park)

    def _book_payment(
        self,
        invoice: Invoice,
        invoice_record: SyncRecord,
        payment: Payment,
        record: SyncRecord,
        revision: int,
        mappings: Mappings,
        ledger: LedgerPort,
        ledger_invoice: LedgerDocument,
    ) -> LedgerDocument | None:
        """Books one payment; returns the ledger invoice as it stands afterwards, or None once a
        payment was booked (the invoice changed: read it again if another payment needs it)."""
        document = (
            self._existing_payment(ledger, ledger_invoice, payment, invoice.source)
            if record.idempotency_key
            else None
        )
        connection_id = invoice_record.connection_id
        if document is None:
            from_ledger = self._from_ledger(connection_id, payment)
            if from_ledger is not None:
                # A payment record payments back attached: the ledger holds that money already.
                record.status = SyncStatus.SKIPPED
                record.last_error = f"recorded from the ledger ({from_ledger})"
                self.state.save(record, revision)
                return ledger_invoice
            amount = Money(minor=payment.amount, currency=payment.currency).to_decimal()
            if payment.cumulative:
                # The source gave the paid total so far: book only what earlier payments of it did
                # not, nor the ledger's own payments payments back told the source about (credit
                # applied to the invoice is not a payment and is not counted).
                paid_in_ledger = self._ledger_paid(invoice_record, mappings)
                booked = (
                    self.state.synced_total(
                        connection_id, "payment", payment.source_id.rsplit(":", 1)[0] + ":"
                    )
                    + paid_in_ledger.ledger_paid_total()
                )
                if paid_in_ledger.ledger_paid_pending(utcnow(), self.intent_timeout):
                    # Stripe's paid total may or may not hold that money yet: subtracting it now
                    # could leave a card payment unbooked if the Stripe call then fails.
                    raise TransientError("a payment from the ledger is being recorded in Stripe")
                amount -= Money(minor=booked, currency=payment.currency).to_decimal()
            if amount <= Decimal(0):
                record.status = SyncStatus.SKIPPED
                record.last_error = "already recorded in the ledger"
                self.state.save(record, revision)
                return ledger_invoice
            if amount > ledger_invoice.balance:
                raise ParkError(
                    "payment exceeds the open balance",
                    f"{amount} {payment.currency} against {ledger_invoice.balance} open in the ledger",
                )
            if self._in_flight(record):
                raise TransientError(f"payment {payment.source_id} is being recorded by another worker")
            record.idempotency_key = record.idempotency_key or idempotency_key(
                invoice_record.connection_id, "payment", payment.source_id, "create"
            )
            record.status = SyncStatus.PENDING
            revision = self.state.save(record, revision)
            draft = PaymentDraft(
                source_id=payment.source_id,
                customer_id=invoice_record.ledger_customer_id or "",
                invoice_id=ledger_invoice.id,
                amount=amount,
                currency=payment.currency,
                paid_on=payment.paid_on,
                private_note=marker(invoice.source, payment.source_id),
                account=mappings.connection.payment_account,
            )
            document = ledger.create_payment(draft, record.idempotency_key)
        if mappings.connection.payout_deposits:
            # Which record a charge's money is, for the payout that later settles it.
            for charge in payment.charges:
                self.state.link(connection_id, payment_link(charge), f"payment#{payment.source_id}")
        if mappings.connection.payments_back:
            # Echo rule 2 (design 3.6): the ledger's webhook for this payment must not send it
            # back to the source, even after someone edits its note. Written before the record
            # says synced: a crash in between writes it again on the retry.
            self.state.link(connection_id, f"ledger-payment:{document.id}", f"payment#{payment.source_id}")
        record.ledger_id = document.id
        record.ledger_number = document.number
        record.ledger_total = Money.from_decimal(document.total, payment.currency).minor
        record.status = SyncStatus.SYNCED
        record.last_error = None
        record.alerted_reason = None
        record.mapping_version = mappings.connection.mapping_version
        self.state.save(record, revision)
        return None

    def _ledger_paid(self, invoice_record: SyncRecord, mappings: Mappings) -> SyncRecord:
        """The invoice's record with the ledger payments payments back has told the source about:
        read again where the flow is on, since payments back may have reserved one after this
        push read the record."""
        if not mappings.connection.payments_back:
            return invoice_record
        latest, _ = self.state.get(invoice_record.connection_id, "invoice", invoice_record.source_id)
        return latest or invoice_record

    def _from_ledger(self, connection_id: str, payment: Payment) -> str | None:
        """The payments-back record a source payment is, when it is a payment record (``pr_…``)
        payments back made for a ledger payment (loop 2 of design 3.6); None for any other."""
        payment_record = getattr(payment, "payment_record", None)
        if not isinstance(payment_record, str) or not payment_record.startswith("pr_"):
            return None
        record_sk = self.state.linked(connection_id, payment_record)
        return record_sk if record_sk is not None and record_sk.startswith("ledger_payment#") else None

    @staticmethod
    def _existing_payment(
        ledger: LedgerPort, invoice: LedgerDocument, payment: Payment, payment_source: str
    ) -> LedgerDocument | None:
        """After a crash: the payment may exist already, linked to the invoice, carrying our marker."""
        for payment_id in invoice.linked_payment_ids:
            document = ledger.get_payment(payment_id)
            if (document.private_note or "").strip() == marker(payment_source, payment.source_id):
                return document
        return None

    # --- state ------------------------------------------------------------------------------------

    def _finish(
        self,
        record: SyncRecord,
        revision: int,
        message: SyncMessage,
        content_hash: str,
        status: SyncStatus,
        note: str | None,
    ) -> PushResult:
        return finish_record(self.state, record, revision, message.version, content_hash, status, note)

    def _park(self, record: SyncRecord, revision: int, version: int, error: ParkError) -> None:
        park_record(self.state, self.alerts, record, revision, version, error)

    def _publish(self, record: SyncRecord, reason: str, text: str) -> None:
        publish_record(self.alerts, record, reason, text)

    def _from_archive(self, message: SyncMessage) -> Subject:
        """The snapshot of a message that travelled without one (too big): from its raw body."""
        body = message.raw.encode("utf-8") if message.raw is not None else None
        if body is None and message.archive_key is not None:
            body = self.archive.get(message.archive_key)
        event = SOURCES[message.source].parse_event(body) if body is not None else None
        if event is None:
            raise InvalidSnapshot("archived event is not a document event", message.archive_key)
        return event.subject


def create_once(
    state: ParkState,
    intent_timeout: timedelta,
    connection_id: str,
    source_id: str,
    number: str | None,
    record: SyncRecord,
    revision: int,
    *,
    find: Callable[[str], LedgerDocument | None],
    create: Callable[[str], LedgerDocument],
    adopt: Callable[[LedgerDocument | None], LedgerDocument | None],
    request: object,
) -> tuple[LedgerDocument, int, bool]:
    """Creates a ledger document exactly once: the intent (its idempotency key) is recorded before
    the create; a retry that finds an intent looks the document up by ``number`` first and takes
    what ``adopt`` accepts (only a document carrying our marker). Returns the document, the record's
    revision and whether an earlier attempt's document was adopted. Push's documents and payouts'
    deposits are both created through it."""
    retry = record.idempotency_key is not None
    if retry and number:
        # An earlier attempt recorded its intent and may have created the document before it
        # died: look before creating again. Ledger idempotency caches expire; this does not.
        existing = adopt(find(number))
        if existing:
            return existing, revision, True
    if intent_in_flight(record, intent_timeout):
        raise TransientError(f"{record.kind} {source_id} is being created by another worker")
    record.idempotency_key = record.idempotency_key or idempotency_key(
        connection_id, record.kind, source_id, "create"
    )
    record.status = SyncStatus.PENDING
    revision = state.save(record, revision)
    try:
        return create(request_key(record.idempotency_key, request)), revision, retry
    except DuplicateNumber:
        existing = adopt(find(number)) if number else None
        if existing:
            return existing, revision, True
        raise  # a stranger's document holds the number: parked, never adopted


def finish_record(
    state: ParkState,
    record: SyncRecord,
    revision: int,
    version: int,
    content_hash: str,
    status: SyncStatus,
    note: str | None,
) -> PushResult:
    """Saves ``record`` settled at ``status`` (synced or skipped) for the snapshot ``version``."""
    record.status = status
    record.source_version = version
    record.content_hash = content_hash
    record.last_error = note
    record.attempts += 1
    state.save(record, revision)
    outcome = Outcome.SYNCED if status is SyncStatus.SYNCED else Outcome.SKIPPED
    return PushResult(outcome, record.source_id, record.ledger_id, note)


# --- parking and intents, shared with payments back -----------------------------------------------


class ParkState(Protocol):
    """What parking needs of the SyncState store: the record's write and the alert markers."""

    def save(self, record: SyncRecord, revision: int) -> int: ...

    def alert_sent(self, key: str) -> bool: ...

    def mark_alert_sent(self, key: str, ttl_seconds: int) -> None: ...


REDRIVE_ADVICE = (
    "Fix the cause (a missing rule: `invoice-sync mappings import`), then re-drive it: "
    "`invoice-sync redrive --connection {connection} --source-id {source_id}`."
)


def intent_in_flight(record: SyncRecord, timeout: timedelta) -> bool:
    """An intent recorded so recently that the worker that recorded it may still be running."""
    return (
        record.status is SyncStatus.PENDING
        and record.idempotency_key is not None
        and record.updated_at is not None
        and utcnow() - record.updated_at < timeout
    )


def park_record(
    state: ParkState,
    alerts: Alerts,
    record: SyncRecord,
    revision: int,
    version: int,
    error: ParkError,
    *,
    advice: str = REDRIVE_ADVICE,
) -> None:
    """Parks ``record`` with the error's reason and alerts once per reason: a broken connection
    once a day for the whole connection, anything else once per record. ``advice`` says what a
    person does about it (``{connection}`` and ``{source_id}`` are filled in)."""
    record.status = error.status
    record.source_version = max(record.source_version, version)
    record.content_hash = None
    record.last_error = str(error)
    record.attempts += 1
    logger.warning("parked", extra={"source_id": record.source_id, "reason": error.reason})
    if isinstance(error, ConnectionBroken):
        # The whole connection is stuck: one alert for it (again daily while it lasts), not
        # one per invoice that arrives meanwhile.
        key = f"{record.connection_id}#{error.reason}"
        if record.alerted_reason != error.reason and not state.alert_sent(key):
            publish_connection(alerts, record.connection_id, error)
            state.mark_alert_sent(key, CONNECTION_ALERT_SECONDS)
    elif record.alerted_reason != error.reason:
        # Published before the record says so: if publishing fails, the retry alerts again.
        publish_record(alerts, record, error.reason, str(error), advice=advice)
    record.alerted_reason = error.reason
    state.save(record, revision)


def publish_connection(alerts: Alerts, connection_id: str, error: ParkError) -> None:
    if error.reason.startswith("Stripe"):
        # A Stripe key missing or refused (payouts read with stripe-api, payments back writes with
        # stripe-writer): the ledger's connection is fine.
        fix = (
            "Store a working Stripe key (`invoice-sync secret stripe-api` for payouts, "
            f"`invoice-sync secret stripe-writer` for payments back, --connection {connection_id})"
        )
    else:
        fix = f"Reconnect the ledger (`invoice-sync connect LEDGER --connection {connection_id}`)"
    alerts.publish(
        f"invoice-sync: connection {connection_id}: {error.reason}",
        f"Connection {connection_id} cannot sync: {error}.\nEvery document that arrives meanwhile is "
        f"parked, not lost. {fix}, then re-drive the parked records (`invoice-sync redrive "
        f"--connection {connection_id}`).",
        {
            "connection_id": connection_id,
            "reason": error.reason,
            "detail": str(error),
            "kind": "connection",
        },
    )


def publish_record(
    alerts: Alerts, record: SyncRecord, reason: str, text: str, *, advice: str = REDRIVE_ADVICE
) -> None:
    alerts.publish(
        f"invoice-sync: {reason} ({record.source_number or record.source_id})",
        f"{record.kind} {record.source_number or record.source_id} of connection {record.connection_id}: "
        f"{text}\n" + advice.format(connection=record.connection_id, source_id=record.source_id),
        {
            "connection_id": record.connection_id,
            "kind": record.kind,
            "source_id": record.source_id,
            "status": record.status.value,
            "reason": reason,
            "detail": text,
        },
    )
