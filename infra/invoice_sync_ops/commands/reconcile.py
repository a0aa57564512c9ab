"""``invoice-sync reconcile``: the reconcile function's check of one connection and window, on demand.

The same use case the schedule runs (``invoice_sync.sync.reconcile_service``): Stripe's invoices,
payments and credit notes of the window, the SyncState records over the day index, the ledger's
listing; the report under ``reports/<connection>/<date>/`` (JSON, CSV, HTML) and one alert when
they differ. Exit 0 when clean, 3 when differences were found, 4 when a side could not be read
to the end (an incomplete report). ``--repair`` re-queues the missing and different documents,
and sends each ledger payment payments back never sent (``ledger_payment_not_sent``) to the ledger
events queue, as ``invoice-sync redrive --kind ledger_payment`` does, for payments back to read.
"""

from __future__ import annotations

import argparse
from datetime import date, timedelta

from rich.table import Table

from invoice_sync.models.mapping import Connection
from invoice_sync.models.messages import LedgerEventMessage
from invoice_sync.models.sync import SyncRecord, SyncStatus, utcnow
from invoice_sync.store.alerts import AlertPublisher
from invoice_sync.store.queue import LedgerEventsQueue, SyncQueue
from invoice_sync.store.reports import ReportBucket
from invoice_sync.sync.reconcile import REPAIRABLE, REPAIRABLE_TO_SOURCE, DifferenceClass
from invoice_sync.sync.reconcile_service import ReconcileService
from invoice_sync.sync.replay import ledger_redrive_event, rebuild
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
    repaired = None
    if args.repair:
        unsent = unsent_events(connection, result.report["differences"])
        # Before anything is sent: a stack without the ledger events queue fails here, in one line.
        ledger_queue = (
            LedgerEventsQueue(target.ledger_events_queue(), target.client("sqs")) if unsent else None
        )
        repaired = _repair(ctx, connection_id, result.report["differences"], stripe)
        repaired["ledger_events"] = len(unsent)
        repaired["ledger_events_queued"] = ledger_queue.send_batch(unsent) if ledger_queue else 0
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
    for column in ("class", "dir", "kind", "source", "number", "source amount", "ledger amount", "detail"):
        table.add_column(column)
    for d in report["differences"]:
        table.add_row(
            d["class"],
            "→S" if d["direction"] == "to_source" else "→L",
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
    directions = report["summary"]["directions"]
    back = directions["to_source"]
    deposits = directions["to_ledger"]
    payouts = (
        f" ({deposits['deposits_checked']} payout deposit(s) read, {deposits['manual_deposit']} manual)"
        if deposits.get("deposits_checked") or deposits.get("manual_deposit")
        else ""
    )
    ctx.say(
        f"to the ledger: {directions['to_ledger']['differences']} difference(s)"
        + payouts
        + "; to Stripe: "
        + (
            f"{back['differences']} difference(s) ({back['ledger_payments_checked']} ledger payment(s) "
            f"and {back['invoices_checked']} invoice(s) checked)"
            if back["payments_back"]
            else "not checked (payments back is off)"
        )
    )
    ctx.say(f"report: s3://{target.archive_bucket}/{result.prefix}report.html")
    if repaired is not None:
        ctx.say(f"re-queued {repaired['queued']} document(s); duplicates are left for a person to void")
        if repaired["ledger_events_queued"]:
            ctx.say(f"sent {repaired['ledger_events_queued']} ledger payment(s) to payments back")
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


def unsent_events(connection: Connection, differences: list[dict[str, object]]) -> list[LedgerEventMessage]:
    """One ledger event per ledger payment payments back never sent (``ledger_payment_not_sent``),
    for the ledger events queue, made as ``invoice-sync redrive --kind ledger_payment`` makes one
    (``replay.ledger_redrive_event``, ``operation="redrive"``): payments back reads the payment
    again and tells Stripe, or records why not."""
    messages: list[LedgerEventMessage] = []
    for difference in differences:
        if difference["class"] not in REPAIRABLE_TO_SOURCE:
            continue
        # The payment has no record yet: the hint needs only whose payment it is and its ledger id.
        unsent = SyncRecord(
            connection_id=connection.connection_id,
            kind="ledger_payment",
            source_id=str(difference["source_id"]),
            direction="to_source",
            ledger_id=str(difference["source_id"]),
        )
        event = ledger_redrive_event(unsent, connection.ledger)
        if event is not None and all(m.object_id != event.object_id for m in messages):
            messages.append(event)
    return messages


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "reconcile",
        parents=[COMMON],
        help="prove Stripe, invoice-sync's records and the ledger agree for a window (report to S3)",
        description=(
            "Lists the window's documents on all three sides, classifies every difference (missing, "
            "unknown to the source, duplicate, amount, tax or rounding, status, currency, payments; "
            "with payments back on, ledger payments never sent to Stripe and Stripe invoices whose "
            "money paid outside Stripe is not what was sent), "
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
    parser.add_argument(
        "--repair",
        action="store_true",
        help="re-queue what is missing or different; send ledger payments never sent to payments back",
    )
    parser.add_argument("--stripe-key", help="Stripe secret key (default: STRIPE_API_KEY, then the secret)")
    parser.set_defaults(func=run)
