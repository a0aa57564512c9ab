"""Re-drive and replay: archived webhooks turned back into queue messages.

Both rebuild the message intake queued from the raw archive (``rebuild``: the same parsing, the
same ``sync_message``) and send it straight to the sync queue. Push's version guard and content
hash keep the ledger at exactly one document whatever is sent again.

- A **re-drive** takes parked records (after a mapping was added, a connection reconnected) back
  to the event that last brought their snapshot (``SyncRecord.archive_key``; for older records
  the archive's listing of the days the record lived). A parked ``ledger_payment`` record (payments
  back) has no Stripe event behind it: it is re-driven as a hint naming its ledger payment,
  ``operation="redrive"``, for the ledger events queue (design two-way, section 4); the worker
  re-reads the payment and gives the parked records fresh tries.
- A **replay** takes every archived event of a window, with today's mapping. ``difference`` says,
  without touching anything, what push would do with each one: the dry run.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Protocol

from invoice_sync.errors import InvalidSnapshot, InvoiceSyncError, MappingMissing
from invoice_sync.mapping.resolver import check_totals, resolve
from invoice_sync.models.documents import (
    CreditNote,
    CreditNoteStatus,
    Invoice,
    InvoiceStatus,
    Payout,
    Refund,
)
from invoice_sync.models.mapping import LedgerKind, MappingRule, Mappings, RuleKind
from invoice_sync.models.messages import LedgerEventMessage, SyncMessage
from invoice_sync.models.sync import DocumentKind, SyncRecord, SyncStatus
from invoice_sync.sources import SOURCES
from invoice_sync.store.archive import ArchivedEvent, parse_archive_key
from invoice_sync.sync.intake import sync_message
from invoice_sync.sync.push import draft_digest, remapped_draft


class ArchiveReader(Protocol):
    def get(self, key: str) -> bytes: ...

    def list(
        self, source: str, connection_id: str, from_day: date, to_day: date
    ) -> Iterator[ArchivedEvent]: ...


class Records(Protocol):
    def get(
        self, connection_id: str, kind: DocumentKind, source_id: str
    ) -> tuple[SyncRecord | None, int]: ...


class CustomerRules(Protocol):
    def customer_rule(self, connection_id: str, source_id: str) -> MappingRule | None: ...


def kind_of(message: SyncMessage) -> DocumentKind:
    if message.payout is not None:
        return "payout"
    if message.credit_note is not None:
        return "credit_note"
    if message.refund is not None:
        return "refund"
    return "invoice"


def rebuild(key: str, body: bytes) -> SyncMessage | None:
    """The message intake queued for this archived body; None for an event invoice-sync ignores.

    Source and connection come from the key (``raw/{source}/{connection}/…``), as intake wrote it.
    A body that no longer parses raises ``InvalidSnapshot`` (or the source's own error).
    """
    parsed = parse_archive_key(key)
    if parsed is None or parsed[0] not in SOURCES:
        raise InvalidSnapshot("not an archived webhook", key)
    source, connection_id = parsed[0], parsed[1]
    event = SOURCES[source].parse_event(body)
    if event is None:
        return None
    return sync_message(event, source=source, connection_id=connection_id, archive_key=key)


# --- re-drive -------------------------------------------------------------------------------------


def archive_key_of(record: SyncRecord, archive: ArchiveReader, source: str) -> str | None:
    """Where the event behind a record is archived: the record says so; an older record is found
    by listing the archive for the days the record lived (created to last written) looking for
    its event id."""
    if record.archive_key:
        return record.archive_key
    if not record.event_id:
        return None
    if record.created_at is None or record.updated_at is None:
        return None
    for archived in archive.list(
        source, record.connection_id, record.created_at.date(), record.updated_at.date()
    ):
        if archived.event_id == record.event_id:
            return archived.key
    return None


# Why a parked ledger_payment record cannot be re-driven (shown to the operator as it is).
NO_LEDGER_PAYMENT_ID = "no ledger payment id on the record: nothing to ask the ledger for"
NO_LEDGER_KIND = "the connection's ledger is not known: a ledger event names its ledger"


def ledger_redrive_event(record: SyncRecord, ledger: LedgerKind) -> LedgerEventMessage | None:
    """The hint that re-drives a parked ``ledger_payment`` record: its ledger payment, by id, for
    ``payments_back`` to re-read (``operation="redrive"``: the parked records start their tries
    afresh). No change time or event id: it comes from a person, not the ledger. None when the
    record does not name its ledger payment."""
    if not record.ledger_id:
        return None
    return LedgerEventMessage(
        connection_id=record.connection_id,
        ledger=ledger,
        kind="payment",
        operation="redrive",
        object_id=record.ledger_id,
        changed_at=None,
        event_id=None,
    )


@dataclass
class RedrivePlan:
    """What a re-drive will send: one message per archived event (an invoice and its parked
    payment share one) for the sync queue, one hint per ledger payment (its records, one per
    invoice it pays, share one) for the ledger events queue; the records it cannot find an event
    for, and those it cannot re-drive at all, with why."""

    messages: list[SyncMessage] = field(default_factory=list)
    ledger_events: list[LedgerEventMessage] = field(default_factory=list)
    records: list[SyncRecord] = field(default_factory=list)
    missing: list[SyncRecord] = field(default_factory=list)
    not_redrivable: list[tuple[SyncRecord, str]] = field(default_factory=list)


def plan_redrive(
    parked: Iterable[SyncRecord],
    archive: ArchiveReader,
    source: str,
    *,
    ledger: LedgerKind | None = None,
) -> RedrivePlan:
    """Plans a re-drive of ``parked`` (records of one connection whose source is ``source`` and
    ledger ``ledger``). Reads the archive only for records that came from the source."""
    plan = RedrivePlan()
    seen: set[str] = set()
    payments: set[tuple[str, str]] = set()
    for record in parked:
        if record.kind == "ledger_payment":
            _plan_ledger_payment(plan, payments, record, ledger)
            continue
        key = archive_key_of(record, archive, source)
        if key is None:
            plan.missing.append(record)
            continue
        plan.records.append(record)
        if key in seen:
            continue
        seen.add(key)
        message = rebuild(key, archive.get(key))
        if message is None:
            plan.missing.append(record)
            continue
        plan.messages.append(message)
    return plan


def _plan_ledger_payment(
    plan: RedrivePlan, payments: set[tuple[str, str]], record: SyncRecord, ledger: LedgerKind | None
) -> None:
    if ledger is None:
        plan.not_redrivable.append((record, NO_LEDGER_KIND))
        return
    event = ledger_redrive_event(record, ledger)
    if event is None:
        plan.not_redrivable.append((record, NO_LEDGER_PAYMENT_ID))
        return
    plan.records.append(record)
    payment = (event.connection_id, event.object_id)
    if payment not in payments:
        payments.add(payment)
        plan.ledger_events.append(event)


# --- replay ---------------------------------------------------------------------------------------


class Verdict(StrEnum):
    CREATE = "create"  # no ledger document yet (no record, or parked before it got one)
    UPDATE = "update"  # the ledger document would be rewritten (or voided)
    UNCHANGED = "unchanged"  # the same snapshot is in the ledger already
    UNMAPPED = "unmapped"  # today's mapping still misses rules: it would park (again)
    REJECTED = "rejected"  # the snapshot itself is refused (totals, no number, ...)
    SKIPPED = "skipped"  # older than what is recorded, or nothing for the books (a draft)
    WAITS = "waits"  # needs a document not in the ledger yet: retried, then the dead-letter queue
    IGNORED = "ignored"  # not a document event: nothing is queued for it


@dataclass(frozen=True)
class Difference:
    """What replaying one archived event would change, and why."""

    archived: ArchivedEvent
    verdict: Verdict
    detail: str
    message: SyncMessage | None = None
    record: SyncRecord | None = None
    missing: tuple[str, ...] = ()
    mapping_version: int | None = None  # today's

    def as_json(self) -> dict[str, object]:
        """Stable keys for ``--json``."""
        message, record = self.message, self.record
        document = message.subject if message else None
        return {
            "archive_key": self.archived.key,
            "received_at": self.archived.stored_at.isoformat(),
            "event_id": self.archived.event_id,
            "event_type": message.event_type if message else None,
            "kind": kind_of(message) if message else None,
            "source_id": document.source_id if document else None,
            "source_number": document.number if document else None,
            "version": message.version if message else None,
            "verdict": self.verdict.value,
            "detail": self.detail,
            "missing": list(self.missing),
            "record_status": record.status.value if record else None,
            "ledger_id": record.ledger_id if record else None,
            "mapping_version_synced": record.mapping_version if record else None,
            "mapping_version_today": self.mapping_version,
        }


def archived_in(
    archive: ArchiveReader, source: str, connection_id: str, start: datetime, end: datetime
) -> Iterator[ArchivedEvent]:
    """The archived events of a connection received from ``start`` to ``end`` (inclusive)."""
    for archived in archive.list(source, connection_id, start.date(), end.date()):
        if start <= archived.stored_at <= end:
            yield archived


def difference(
    archived: ArchivedEvent,
    body: bytes,
    *,
    records: Records,
    mappings: Mappings,
    customers: CustomerRules,
) -> Difference:
    """What push would do with this archived event today, reading only: the dry run's answer."""
    version_now = mappings.connection.mapping_version
    try:
        message = rebuild(archived.key, body)
    except InvoiceSyncError as error:
        return Difference(archived, Verdict.REJECTED, f"archived body no longer parses: {error}")
    if message is None:
        return Difference(archived, Verdict.IGNORED, "not a document event")
    document = message.subject
    assert document is not None
    record, _ = records.get(message.connection_id, kind_of(message), document.source_id)

    def verdict(kind: Verdict, detail: str, missing: tuple[str, ...] = ()) -> Difference:
        return Difference(archived, kind, detail, message, record, missing, version_now)

    if record is not None and record.source_version > message.version:
        return verdict(Verdict.SKIPPED, f"older than the recorded snapshot ({record.status.value})")
    remap = ""
    if record is not None and record.mapping_version is not None and record.mapping_version != version_now:
        remap = f"mapping v{record.mapping_version} then, v{version_now} today"
    try:
        if isinstance(document, Payout):
            return _payout(document, record, mappings, verdict)
        if isinstance(document, Refund):
            return _refund(document, record, mappings, verdict, remap)
        if isinstance(document, CreditNote):
            return _credit_note(message, document, record, records, mappings, verdict, remap)
        return _invoice(message, document, record, records, mappings, customers, verdict, remap)
    except MappingMissing as error:
        return verdict(Verdict.UNMAPPED, str(error), tuple(error.missing))
    except InvalidSnapshot as error:
        return verdict(Verdict.REJECTED, str(error))


def _payout(payout: Payout, record: SyncRecord | None, mappings: Mappings, verdict: _Verdict) -> Difference:
    """A payout's deposit depends on Stripe's balance transactions, which a dry run does not read:
    it says whether one would be booked, not its lines."""
    if not mappings.connection.payout_deposits:
        return verdict(Verdict.SKIPPED, "payout deposits not enabled")
    if record is not None and record.status is SyncStatus.SYNCED and record.ledger_id:
        return verdict(Verdict.UNCHANGED, f"deposit {record.ledger_id} booked")
    if payout.status != "paid" or not payout.automatic:
        return verdict(Verdict.SKIPPED, f"{payout.status} payout: no deposit")
    was = f"parked {record.status.value}: {record.last_error}" if record and record.status.parked else ""
    return verdict(Verdict.CREATE, _join("a deposit would be booked from Stripe's balance transactions", was))


class _Verdict(Protocol):
    def __call__(self, kind: Verdict, detail: str, missing: tuple[str, ...] = ()) -> Difference: ...


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def _unchanged(record: SyncRecord, verdict: _Verdict, remap: str, extra: str = "") -> Difference:
    if remap:
        # Only invoices are rewritten with a newer mapping, and only where it maps them differently:
        # a credit note or refund in the ledger may be applied or paid out, which ledgers lock.
        return verdict(
            Verdict.UNCHANGED,
            _join(f"same snapshot; {remap}: the ledger's document stays as it is", extra),
        )
    return verdict(Verdict.UNCHANGED, _join(f"same snapshot as ledger {record.ledger_id}", extra))


def _changed_or_new(record: SyncRecord | None, verdict: _Verdict, remap: str, extra: str = "") -> Difference:
    if record is not None and record.ledger_id:
        return verdict(
            Verdict.UPDATE, _join(f"content changed: ledger {record.ledger_id} rewritten", remap, extra)
        )
    was = f"parked {record.status.value}: {record.last_error}" if record and record.status.parked else ""
    return verdict(Verdict.CREATE, _join("no ledger document yet", was, remap, extra))


def _invoice(
    message: SyncMessage,
    invoice: Invoice,
    record: SyncRecord | None,
    records: Records,
    mappings: Mappings,
    customers: CustomerRules,
    verdict: _Verdict,
    remap: str,
) -> Difference:
    if invoice.status is InvoiceStatus.DRAFT:
        return verdict(Verdict.SKIPPED, "draft: not in the books")
    payments = [
        p.source_id
        for p in invoice.payments
        if (found := records.get(message.connection_id, "payment", p.source_id)[0]) is None
        or found.status not in {SyncStatus.SYNCED, SyncStatus.SKIPPED}
    ]
    extra = f"{len(payments)} payment(s) to book: {', '.join(payments)}" if payments else ""
    if (
        record is not None
        and record.status is SyncStatus.SYNCED
        and record.ledger_id
        and record.content_hash == invoice.content_hash()
    ):
        # Replayed with today's mapping: push rewrites it only where that gives another document.
        customer = customers.customer_rule(message.connection_id, invoice.customer.source_id)
        draft = remapped_draft(invoice, record, mappings, customer)
        if draft is None or draft_digest(draft) == record.draft_hash:
            return _unchanged(record, verdict, remap, extra)
        return verdict(
            Verdict.UPDATE,
            _join(f"same snapshot; {remap}: ledger {record.ledger_id} rewritten with today's mapping", extra),
        )
    check_totals(invoice)
    if invoice.status is InvoiceStatus.VOID:
        if record is not None and record.ledger_id:
            return verdict(Verdict.UPDATE, f"void: ledger {record.ledger_id} voided")
        return verdict(Verdict.SKIPPED, "void before it reached the ledger")
    if not invoice.number:
        raise InvalidSnapshot("invoice has no number", "a finalized invoice needs its number in the ledger")
    resolve(invoice, mappings, customers.customer_rule(message.connection_id, invoice.customer.source_id))
    return _changed_or_new(record, verdict, remap, extra)


def _credit_note(
    message: SyncMessage,
    note: CreditNote,
    record: SyncRecord | None,
    records: Records,
    mappings: Mappings,
    verdict: _Verdict,
    remap: str,
) -> Difference:
    if record is not None and record.status is SyncStatus.SYNCED and record.ledger_id:
        if note.status is CreditNoteStatus.ISSUED:
            return _unchanged(record, verdict, remap)
        if record.content_hash != note.content_hash():
            return verdict(Verdict.UPDATE, f"void: ledger {record.ledger_id} voided")
        return _unchanged(record, verdict, remap)
    invoice = (
        records.get(message.connection_id, "invoice", note.invoice_source_id)[0]
        if note.invoice_source_id
        else None
    )
    # As push decides (``_converge_credit_note``): a parked invoice parks its credit note; one not
    # in the ledger yet sends it back to the queue until it is, or until the dead-letter queue.
    if invoice is not None and invoice.status.parked:
        return verdict(
            Verdict.REJECTED,
            f"parked with its invoice {invoice.source_number or note.invoice_source_id} "
            f"({invoice.status.value}: {invoice.last_error}); re-drive it after the invoice",
        )
    if invoice is None or invoice.status is not SyncStatus.SYNCED or not invoice.ledger_id:
        state = invoice.status.value if invoice else "not synced"
        return verdict(
            Verdict.WAITS,
            f"its invoice {note.invoice_source_id} is {state}: retried until it syncs, "
            "else the dead-letter queue",
        )
    check_totals(note)
    if note.status is CreditNoteStatus.VOID:
        return verdict(Verdict.SKIPPED, "void before it reached the ledger")
    products = json.loads(invoice.line_products or "{}")
    lines = tuple(
        line.model_copy(update={"product_id": line.product_id or products.get(line.invoice_line_id or "")})
        for line in note.lines
    )
    customer = MappingRule(
        kind=RuleKind.CUSTOMER,
        source_value=note.customer.source_id,
        ledger_id=invoice.ledger_customer_id or "",
    )
    resolve(note.model_copy(update={"lines": lines}), mappings, customer)
    return _changed_or_new(record, verdict, remap)


def _refund(
    refund: Refund, record: SyncRecord | None, mappings: Mappings, verdict: _Verdict, remap: str
) -> Difference:
    if (
        record is not None
        and record.status in {SyncStatus.SYNCED, SyncStatus.SKIPPED}
        and record.content_hash == refund.content_hash()
    ):
        return _unchanged(record, verdict, remap)
    connection = mappings.connection
    if not (connection.refund_item_id or connection.refund_account):
        raise MappingMissing(["refund item: set refund_item_id (Xero: refund_account) on the connection"])
    return _changed_or_new(
        record, verdict, remap, f"{refund.money(refund.total)} refunded on {refund.charge_id}"
    )
