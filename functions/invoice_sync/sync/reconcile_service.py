"""The reconcile use case: read the three sides of one connection's window, compare them, write
the report under ``reports/<connection>/<date>/``, keep the run in the history, leave the verdict
for the daily report, and alert once when there are differences (or the day is far too quiet).

Used by the reconcile Lambda (the schedule) and by ``invoice-sync reconcile`` (on demand)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol

from invoice_sync.errors import InvalidPayload, NotFound
from invoice_sync.ledgers.port import LedgerPayment, LedgerPort, ListedKind
from invoice_sync.models.mapping import Connection
from invoice_sync.models.sync import DocumentKind, SyncRecord
from invoice_sync.sources.stripe import parse_credit_note, parse_invoice
from invoice_sync.sources.stripe_api import StripeApi, StripeNotFound
from invoice_sync.store.reports import ReportBucket, report_prefix
from invoice_sync.sync.reconcile import (
    Comparison,
    LedgerEntry,
    Links,
    OffStripe,
    Reconciler,
    SourceDoc,
    SourceRefund,
    absence,
    iterate,
    ledger_entry,
    usual_level,
)
from invoice_sync.sync.reconcile_report import report_csv, report_html, report_json

LISTED_KINDS: tuple[ListedKind, ...] = ("invoice", "credit_note", "refund", "payment")


class Records(Protocol):
    def by_day(
        self, connection_id: str, since: datetime, until: datetime | None = None, *, newest_first: bool = True
    ) -> Iterator[SyncRecord]: ...

    def record_reconciliation(self, connection_id: str, day: str, status: str, detail: str) -> None: ...

    # Payments back's checks: a few records by key, only for a connection with it on.
    def get(
        self, connection_id: str, kind: DocumentKind, source_id: str
    ) -> tuple[SyncRecord | None, int]: ...

    def records_with_prefix(
        self, connection_id: str, kind: DocumentKind, source_prefix: str
    ) -> Iterator[tuple[SyncRecord, int]]: ...

    def linked(self, connection_id: str, name: str) -> str | None: ...


class Alerts(Protocol):
    def publish(self, subject: str, text: str, details: dict[str, Any]) -> None: ...


def invoice_documents(invoice: dict[str, Any]) -> Iterator[SourceDoc]:
    """A Stripe invoice and its payments as reconciliation compares them (drafts are not books)."""
    parsed = parse_invoice(invoice)
    if parsed.status.value == "draft":
        return
    created = int(invoice.get("created") or 0)
    yield SourceDoc(
        "invoice",
        parsed.source_id,
        parsed.number,
        parsed.currency,
        parsed.total,
        parsed.tax,
        parsed.status.value,
        created,
    )
    for payment in parsed.payments:
        yield SourceDoc(
            "payment",
            payment.source_id,
            None,
            payment.currency,
            payment.amount,
            0,
            "paid",
            created,
            invoice_id=parsed.source_id,
            payment_record=payment.payment_record,
            cumulative=payment.cumulative,
        )


def credit_note_document(note: dict[str, Any]) -> SourceDoc:
    parsed = parse_credit_note(note)
    return SourceDoc(
        "credit_note",
        parsed.source_id,
        parsed.number,
        parsed.currency,
        parsed.total,
        parsed.tax,
        parsed.status.value,
        int(note.get("created") or 0),
    )


def stripe_documents(api: StripeApi, since: datetime, until: datetime) -> Iterator[SourceDoc]:
    """Invoices (with their payments) and credit notes created in the window, Stripe's pages of
    100. An object the parser cannot read is skipped here; push parks it when it arrives."""
    low, high = int(since.timestamp()), int(until.timestamp())
    for invoice in iterate(api.list_objects("invoices", created_gte=low, created_lte=high)):
        try:
            yield from invoice_documents(invoice)
        except InvalidPayload:
            continue
    for note in iterate(api.list_objects("credit_notes", created_gte=low, created_lte=high)):
        try:
            yield credit_note_document(note)
        except InvalidPayload:
            continue


def refund_document(refund: dict[str, Any]) -> SourceRefund | None:
    """A Stripe refund as reconciliation compares it; None for one that names no charge."""
    charge = refund.get("charge")
    charge_id = charge.get("id") if isinstance(charge, dict) else charge
    if not isinstance(charge_id, str) or not charge_id:
        return None
    return SourceRefund(
        str(refund["id"]),
        charge_id,
        str(refund.get("currency") or "usd").upper(),
        int(refund.get("amount") or 0),
        str(refund.get("status") or "succeeded"),
        int(refund.get("created") or 0),
    )


def stripe_refunds(api: StripeApi, since: datetime, until: datetime) -> Iterator[SourceRefund]:
    """Refunds created in the window (their charges are the ones compared), pages of 100."""
    low, high = int(since.timestamp()), int(until.timestamp())
    for refund in iterate(api.list_objects("refunds", created_gte=low, created_lte=high)):
        found = refund_document(refund)
        if found is not None:
            yield found


def charge_refunds(api: StripeApi) -> Any:
    """All of one charge's refunds, whenever made (``GET /v1/refunds?charge=``)."""

    def read(charge_id: str) -> list[SourceRefund]:
        found = (refund_document(r) for r in iterate(api.list_objects("refunds", charge=charge_id)))
        return [r for r in found if r is not None]

    return read


def stripe_lookup(api: StripeApi) -> Any:
    """One document by id, for the few keys only one side holds (a document from before the
    window, touched in it, or one Stripe does not know: ``None``)."""

    def lookup(kind: str, source_id: str) -> SourceDoc | None:
        try:
            if kind == "invoice":
                return next(invoice_documents(api.get_invoice(source_id)), None)
            if kind == "credit_note":
                return credit_note_document(api.get_object("credit_notes", source_id))
        except (StripeNotFound, InvalidPayload):
            return None
        return None  # a payment is judged with its invoice

    return lookup


# The one field Stripe fills on request only: money paid on the invoice outside Stripe, computed
# from its payment records ("not available in event payloads"; added in 2026-05-27.dahlia, and the
# pinned API_VERSION 2026-06-24.dahlia has it), docs.stripe.com/changelog/dahlia/2026-05-27/
# invoice-object-amount-paid-off-stripe-property. Documented for a retrieve; whether a list's
# ``expand[]=data.amount_paid_off_stripe`` works is not, so each invoice concerned is retrieved.
OFF_STRIPE_EXPAND = "amount_paid_off_stripe"
# How long a ledger payment may take to reach payments back (the ledger's webhook and the queue take
# seconds, the Xero poll runs every 15 minutes): one changed since is judged by a later run.
SETTLE = timedelta(hours=1)


def off_stripe_of(invoice: dict[str, Any]) -> OffStripe:
    """Stripe's invoice as the off-Stripe check reads it (amounts in minor units)."""
    amount = invoice.get(OFF_STRIPE_EXPAND)
    return OffStripe(
        invoice_id=str(invoice["id"]),
        number=invoice.get("number"),
        currency=str(invoice.get("currency") or "usd").upper(),
        amount=int(amount) if isinstance(amount, int) and not isinstance(amount, bool) else None,
    )


@dataclass(frozen=True)
class StoredPaymentsBack:
    """``PaymentsBackSide`` on the SyncState table, the connection's ledger and Stripe: one query,
    GetItem or GET per document concerned, never a scan."""

    connection_id: str
    since: datetime | None
    records: Records
    ledger: LedgerPort
    stripe: StripeApi
    settled_before: datetime | None = None

    def records_of_payment(self, ledger_payment_id: str) -> list[SyncRecord]:
        found = self.records.records_with_prefix(
            self.connection_id, "ledger_payment", f"{ledger_payment_id}:"
        )
        return [record for record, _ in found]

    def pushed(self, ledger_payment_id: str) -> bool:
        return self.records.linked(self.connection_id, f"ledger-payment:{ledger_payment_id}") is not None

    def payment(self, ledger_payment_id: str) -> LedgerPayment | None:
        try:
            return self.ledger.get_ledger_payment(ledger_payment_id)
        except NotFound:
            return None

    def invoice_records(self, invoice_id: str) -> list[SyncRecord]:
        """The invoice record's ``ledger_paid`` names every ledger payment Stripe holds or may hold
        for it (design 3.6 loop 2), by its record's sort key: each of those records, read by key."""
        invoice, _ = self.records.get(self.connection_id, "invoice", invoice_id)
        found = []
        for key in sorted((invoice.ledger_paid or {}) if invoice is not None else {}):
            record, _ = self.records.get(
                self.connection_id, "ledger_payment", key.removeprefix("ledger_payment#")
            )
            if record is not None:
                found.append(record)
        return found

    def from_ledger(self, payment_record_id: str) -> bool:
        linked = self.records.linked(self.connection_id, payment_record_id)
        return linked is not None and linked.startswith("ledger_payment#")

    def off_stripe(self, invoice_id: str) -> OffStripe | None:
        try:
            return off_stripe_of(self.stripe.get_invoice(invoice_id, expand=[OFF_STRIPE_EXPAND]))
        except StripeNotFound:
            return None


@dataclass(frozen=True)
class LedgerDeposits:
    """``DepositSide`` on the connection's ledger: a payout's deposit read by the id push recorded
    (``LedgerPort.get_deposit``: QBO Deposit, Xero bank transfer, FreshBooks fee expense)."""

    ledger: LedgerPort

    @property
    def support(self) -> str:
        return self.ledger.deposit_support

    def deposit(self, ledger_id: str) -> LedgerEntry | None:
        try:
            return ledger_entry("payout", self.ledger.get_deposit(ledger_id))
        except NotFound:
            return None


def ledger_documents(ledger: LedgerPort, since: datetime) -> Iterator[LedgerEntry]:
    for kind in LISTED_KINDS:
        for document in ledger.list_documents(kind, since):
            yield ledger_entry(kind, document)


@dataclass(frozen=True)
class RunResult:
    report: dict[str, Any]
    prefix: str
    link: str | None
    alerted: bool
    comparison: Comparison


class ReconcileService:
    def __init__(
        self,
        *,
        records: Records,
        reports: ReportBucket,
        alerts: Alerts,
        link_seconds: int = 7 * 24 * 3600,
        absence_ratio: float = 0.25,
    ) -> None:
        self.records = records
        self.reports = reports
        self.alerts = alerts
        self.link_seconds = link_seconds
        self.absence_ratio = absence_ratio

    def run(
        self,
        connection: Connection,
        start: date,
        end: date,
        *,
        stripe: StripeApi,
        ledger: LedgerPort,
        now: datetime,
    ) -> RunResult:
        since = datetime.combine(start, time.min, UTC)
        until = datetime.combine(end + timedelta(days=1), time.min, UTC) - timedelta(seconds=1)
        back = (
            StoredPaymentsBack(
                connection.connection_id,
                connection.payments_back_since,
                self.records,
                ledger,
                stripe,
                settled_before=now - SETTLE,
            )
            if connection.payments_back
            else None
        )
        reconciler = Reconciler(
            since, stripe_lookup(stripe), charge_refunds(stripe), back, deposits=LedgerDeposits(ledger)
        )
        reconciler.add_sources(stripe_documents(stripe, since, until))
        reconciler.add_refunds(stripe_refunds(stripe, since, until))
        # Records and ledger documents last written from the window's start to now: an invoice of
        # the window paid since is still its subject.
        reconciler.add_records(self.records.by_day(connection.connection_id, since, now, newest_first=False))
        reconciler.add_ledger(ledger_documents(ledger, since))
        comparison = reconciler.compare()
        history = self.reports.history(connection.connection_id)
        usual = usual_level(history, end.weekday()) if start == end else None
        quiet = absence(comparison.synced, usual, self.absence_ratio)
        links = Links(connection.ledger, connection.tenant_id, livemode=False)
        report = report_json(
            comparison,
            connection_id=connection.connection_id,
            ledger=connection.ledger,
            start=start,
            end=end,
            generated_at=now,
            links=links,
            absence=quiet,
        )
        day = end.isoformat() if start == end else f"{start.isoformat()}_{end.isoformat()}"
        prefix = report_prefix(connection.connection_id, day)
        run = {
            "date": end.isoformat(),
            "weekday": end.weekday(),
            "status": comparison.status,
            "synced": comparison.synced,
            "differences": comparison.counts(),
        }
        # One entry per day for one-day windows (a re-run replaces the day's verdict: an incomplete
        # day the next run completes is no longer incomplete), kept in date order.
        history = [h for h in history if h.get("date") != run["date"] or start != end] + [run]
        history.sort(key=lambda h: str(h.get("date", "")))
        self.reports.put(
            prefix + "report.json", json.dumps(report, indent=2, sort_keys=True).encode(), "application/json"
        )
        self.reports.put(prefix + "differences.csv", report_csv(report), "text/csv")
        self.reports.put(prefix + "report.html", report_html(report, history), "text/html; charset=utf-8")
        self.reports.save_history(connection.connection_id, history)
        link = self.reports.link(prefix + "report.html", self.link_seconds)
        counts = {k: v for k, v in comparison.counts().items() if v}
        for day_of in _days(start, end):
            self.records.record_reconciliation(
                connection.connection_id,
                day_of.isoformat(),
                comparison.status,
                json.dumps(counts, sort_keys=True),
            )
        alerted = False
        if comparison.differences or quiet or comparison.incomplete:
            total = sum(counts.values())
            subject = f"invoice-sync reconciliation {connection.connection_id} {day}: " + (
                f"{total} difference(s)"
                if total
                else comparison.status
                if comparison.incomplete
                else "too quiet"
            )
            self.alerts.publish(
                subject,
                f"{subject}. Report: {link}",
                {
                    "connection_id": connection.connection_id,
                    "reason": "reconciliation",
                    "status": comparison.status,
                    "counts": counts,
                    "absence": quiet,
                    "incomplete": comparison.incomplete,
                    "report": f"s3://{self.reports.bucket}/{prefix}report.html",
                    "link": link,
                },
            )
            alerted = True
        return RunResult(report, prefix, link, alerted, comparison)


# --- the schedule ---------------------------------------------------------------------------------

# How many days back a scheduled run looks for days left incomplete (a ledger or Stripe outage):
# a week covers a long weekend's outage without the run growing without bound.
PICKUP_DAYS = 7


def days_to_run(
    history: list[dict[str, Any]], day: date, lookback: int = PICKUP_DAYS, *, again: bool = False
) -> list[date]:
    """The days a scheduled run checks: the days of the last ``lookback`` before ``day`` whose
    latest verdict is ``incomplete`` (oldest first), then ``day`` itself unless a complete verdict
    for it is already kept (a retry of the same night does not check a finished day again)."""
    latest = {str(h.get("date")): str(h.get("status")) for h in history}
    earlier = [day - timedelta(days=n) for n in range(lookback, 0, -1)]
    days = [d for d in earlier if latest.get(d.isoformat()) == "incomplete"]
    if again or latest.get(day.isoformat()) in (None, "incomplete"):
        days.append(day)
    return days


class Connections(Protocol):
    def connections(self) -> list[Connection]: ...


@dataclass(frozen=True)
class ScheduledRun:
    connection_id: str
    day: date
    result: RunResult | None = None
    error: str | None = None


class ReconcileFailed(Exception):
    """A scheduled run could not check some connection at all (its Stripe key or ledger could not
    be set up): raised after every other connection was checked, so Lambda retries the run."""


def run_schedule(
    service: ReconcileService,
    *,
    connections: Connections,
    sides: Any,
    day: date,
    now: datetime,
    lookback: int = PICKUP_DAYS,
    again: bool = False,
) -> list[ScheduledRun]:
    """Checks ``day`` for every active connection, and before it the days of the last ``lookback``
    left incomplete. ``sides(connection)`` gives that connection's (StripeApi, LedgerPort). A
    connection that cannot be set up is reported in the result, the others still run; raises
    ``ReconcileFailed`` at the end if any could not. ``again``: check ``day`` even if it already
    has a complete verdict (a manual re-run of a named day)."""
    runs: list[ScheduledRun] = []
    for connection in connections.connections():
        if not connection.active:
            continue
        days = days_to_run(service.reports.history(connection.connection_id), day, lookback, again=again)
        if not days:
            continue
        try:
            stripe, ledger = sides(connection)
        except Exception as exc:  # noqa: BLE001 - one connection's setup does not stop the others
            runs.append(ScheduledRun(connection.connection_id, day, error=f"{type(exc).__name__}: {exc}"))
            continue
        for each in days:
            result = service.run(connection, each, each, stripe=stripe, ledger=ledger, now=now)
            runs.append(ScheduledRun(connection.connection_id, each, result))
    failed = [r for r in runs if r.error]
    if failed:
        raise ReconcileFailed("; ".join(f"{r.connection_id}: {r.error}" for r in failed))
    return runs


def _days(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)
