"""``invoice-sync reconcile``: the reconcile function's check of one connection and window, on demand.

The same use case the schedule runs (``invoice_sync.sync.reconcile_service``): Stripe's invoices,
payments and credit notes of the window, the SyncState records over the day index, the ledger's
listing; the report under ``reports/<connection>/<date>/`` (JSON, CSV, HTML) and one alert when
they differ. Exit 0 when clean, 3 when differences were found, 4 when a side could not be read
to the end (an incomplete report). ``--repair`` re-queues the missing and different documents.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

from rich.table import Table

from invoice_sync.models.sync import SyncStatus, utcnow
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.queue import SyncQueue
from invoice_sync.store.reports import ReportBucket
from invoice_sync.sync.reconcile import REPAIRABLE, DifferenceClass
from invoice_sync.sync.reconcile_service import ReconcileService
from invoice_sync.sync.replay import rebuild
from invoice_sync_ops import stripe_import
from invoice_sync_ops.commands import COMMON, CliError, Context

MAX_WINDOW_DAYS = 93


def _day(text: str, today: date) -> date:
    """A day as typed: ``YYYY-MM-DD``, ``today`` or ``yesterday`` (UTC)."""
    named = {"today": today, "yesterday": today - timedelta(days=1)}
    if text.strip().lower() in named:
        return named[text.strip().lower()]
    return date.fromisoformat(text)


def window(start: str, end: str, today: date) -> tuple[date, date]:
    try:
        first, last = _day(start, today), _day(end, today)
    except ValueError:
        raise CliError(
            f"cannot read {start!r} / {end!r} as dates: use YYYY-MM-DD, today or yesterday", code=2
        ) from None
    if first > last:
        raise CliError(f"--from {first} is after --to {last}", code=2)
    if last > today:
        raise CliError(f"--to {last} is in the future (today is {today} UTC)", code=2)
    if (last - first).days >= MAX_WINDOW_DAYS:
        raise CliError(f"the window is longer than {MAX_WINDOW_DAYS} days: reconcile it in parts", code=2)
    return first, last


def run(args: argparse.Namespace, ctx: Context) -> int:
    now = utcnow()
    start, end = window(args.start, args.end, now.date())
    connection_id = ctx.connection_id
    connection = ctx.connection(connection_id)
    target = ctx.target
    stripe = stripe_import.stripe_client(ctx, args.stripe_key, connection_id)
    service = ReconcileService(
        records=ctx.state,
        reports=ReportBucket(target.archive_bucket, target.client("s3")),
        alerts=AlertPublisher(target.alerts_topic_arn, target.client("sns")),
    )
    result = service.run(connection, start, end, stripe=stripe, ledger=ctx.ledger(connection_id), now=now)
    report = result.report
    repaired = _repair(ctx, connection_id, result.report["differences"], stripe) if args.repair else None
    data = {
        **report,
        "location": f"s3://{target.archive_bucket}/{result.prefix}",
        "link": result.link,
        "alerted": result.alerted,
        "repaired": repaired,
    }
    table = Table(
        title=f"Reconciliation {connection_id} {start} to {end}: {report['status']}", title_justify="left"
    )
    for column in ("class", "kind", "source", "number", "source amount", "ledger amount", "detail"):
        table.add_column(column)
    for d in report["differences"]:
        table.add_row(
            d["class"],
            d["kind"],
            d["source_id"],
            d["number"] or "",
            d["source_amount"] or "",
            d["ledger_amount"] or "",
            d["detail"],
        )
    ctx.emit(data, table)
    for item in report["incomplete"]:
        ctx.say(f"incomplete: the {item['side']} could not be read to the end ({item['error']})")
    ctx.say(f"report: s3://{target.archive_bucket}/{result.prefix}report.html")
    if repaired is not None:
        ctx.say(f"re-queued {repaired['queued']} document(s); duplicates are left for a person to void")
    if report["incomplete"]:
        return 4
    return 3 if report["differences"] else 0


def _repair(
    ctx: Context, connection_id: str, differences: list[dict[str, object]], stripe: object
) -> dict[str, int]:
    """Re-queues each repairable invoice or credit note through the sync queue: rebuilt from the raw
    archive where its record names the event, else an event made from Stripe's object as
    ``backfill`` makes one; a synced record first forgets what the ledger no longer matches.
    Nothing in the ledger is deleted or voided."""
    archive = stripe_import.archive(ctx)
    messages = []
    seen: set[str] = set()
    for difference in differences:
        if difference["class"] not in REPAIRABLE:
            continue
        kind, source_id = str(difference["kind"]), str(difference["source_id"])
        if kind == "payment":
            continue  # a payment is not queued on its own: its invoice's snapshot carries it
        if source_id in seen:
            continue
        seen.add(source_id)
        record, revision = ctx.state.get(connection_id, kind, source_id)  # type: ignore[arg-type]
        if record is not None and record.status is SyncStatus.SYNCED:
            # Push treats the same snapshot again as done (its record's content hash matches), so
            # the record first forgets what the ledger no longer shows: the pushed content, and
            # for a missing document the ledger id too. Push then updates the document to the
            # snapshot, or (looking it up by number first) creates it once again.
            record.content_hash = None
            if difference["class"] == DifferenceClass.MISSING_IN_LEDGER.value:
                record.ledger_id = record.ledger_version = None
            ctx.state.save(record, revision)
        message = None
        if record is not None and record.archive_key:
            message = rebuild(record.archive_key, archive.get(record.archive_key))
        elif kind == "invoice":
            _, body = stripe_import.synthetic_event(stripe.get_invoice(source_id))  # type: ignore[attr-defined]
            message = stripe_import.archived_message(archive, connection_id, "stripe", body)
        if message is not None:
            messages.append(message)
    queued = (
        SyncQueue(ctx.target.sync_queue_url, ctx.target.client("sqs")).send_batch(messages) if messages else 0
    )
    return {"queued": queued}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "reconcile",
        parents=[COMMON],
        help="prove Stripe, invoice-sync's records and the ledger agree for a window (report to S3)",
        description=(
            "Lists the window's documents on all three sides, classifies every difference (missing, "
            "unknown to the source, duplicate, amount, tax or rounding, status, currency, payments), "
            "writes JSON, CSV and HTML under reports/<connection>/<date>/ and alerts once when they "
            "differ. Exit 0 clean, 3 differences, 4 incomplete."
        ),
    )
    parser.add_argument(
        "--from", dest="start", required=True, help="first day, YYYY-MM-DD, today or yesterday (UTC)"
    )
    parser.add_argument(
        "--to", dest="end", required=True, help="last day, YYYY-MM-DD, today or yesterday (UTC)"
    )
    parser.add_argument("--repair", action="store_true", help="re-queue what is missing or different")
    parser.add_argument("--stripe-key", help="Stripe secret key (default: STRIPE_API_KEY, then the secret)")
    parser.set_defaults(func=run)
