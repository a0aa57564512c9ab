"""``invoice-sync replay --from --to [--dry-run]``: the archived webhooks of a window, again,
with today's mapping.

Lists the raw archive day by day (only the window's days), rebuilds each event's message as
intake built it and, with ``--dry-run``, says what push would do with it today (create, update,
unchanged, still unmapped with the missing rules, rejected, skipped), touching nothing. Without
it the messages go straight to the sync queue, ten to a request: intake's de-duplication markers
stop senders, not operators, and push's version guard keeps every document exactly once.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import date, timedelta
from itertools import groupby

from rich.table import Table

from invoice_sync.sources import SOURCES
from invoice_sync.store.archive import ArchivedEvent, RawArchive
from invoice_sync.store.queue import SyncQueue
from invoice_sync.sync.replay import Difference, Verdict, archived_in, difference, kind_of
from invoice_sync_ops.commands import COMMON, CliError, Context
from invoice_sync_ops.commands.log import KINDS, parse_when
from invoice_sync_ops.commands.redrive import confirm, progress

MAX_WINDOW = timedelta(days=366)
# Events listed in the table and --json; the counts cover every one.
SHOWN_EVENTS = 1000
_STYLE = {
    Verdict.CREATE: "green",
    Verdict.UPDATE: "cyan",
    Verdict.UNMAPPED: "yellow",
    Verdict.REJECTED: "red",
    Verdict.UNCHANGED: "dim",
    Verdict.SKIPPED: "dim",
    Verdict.WAITS: "yellow",
    Verdict.IGNORED: "dim",
}


def _table(differences: list[Difference], title: str, *, dry_run: bool) -> Table:
    table = Table(title=title, title_justify="left")
    for column in (
        "received (UTC)",
        "event",
        "kind",
        "source",
        "number",
        "would" if dry_run else "verdict",
        "why",
    ):
        table.add_column(column, overflow="fold")
    for d in differences:
        message = d.message
        document = message.subject if message else None
        style = _STYLE[d.verdict]
        table.add_row(
            d.archived.stored_at.strftime("%Y-%m-%d %H:%M:%S"),
            message.event_type if message else d.archived.event_id,
            kind_of(message) if message else "",
            document.source_id if document else "",
            (document.number or "") if document else "",
            f"[{style}]{d.verdict.value}[/]",
            d.detail,
        )
    return table


def _day_of(archived: ArchivedEvent) -> date:
    return archived.day


def run(args: argparse.Namespace, ctx: Context) -> int:
    start = parse_when(args.start)
    end = parse_when(args.end, end_of_day=True)
    if start > end:
        raise CliError(f"--from {args.start} is after --to {args.end}", code=2)
    if end - start > MAX_WINDOW:
        raise CliError("a replay window is at most 366 days: replay a long history in parts", code=2)
    connection_id = ctx.connection_id
    mappings = ctx.connection_mappings(connection_id)
    source = args.source or mappings.connection.source
    if source not in SOURCES:
        raise CliError(f"unknown source {source!r}: expected one of {', '.join(sorted(SOURCES))}", code=2)
    target = ctx.target
    archive = RawArchive(target.archive_bucket, target.client("s3"))
    queue = None if args.dry_run else SyncQueue(target.sync_queue_url, target.client("sqs"))
    if queue is not None:
        # Counted from the listing (bundles are read for their event ids; single objects are
        # not), to ask before anything is sent.
        listed = sum(1 for _ in archived_in(archive, source, connection_id, start, end))
        confirm(ctx, args, listed, f"this re-queues up to {listed} archived event(s)")

    # Day by day, so memory holds one day's events, not the window's: judged, sent in the order
    # they arrived, then only counted (and the first SHOWN_EVENTS kept for the listing).
    shown: list[Difference] = []
    summary: Counter[str] = Counter()
    queued = 0
    with progress(ctx) as bar:
        task = bar.add_task("reading the archive" if args.dry_run else "re-queuing", total=None)
        for _, day in groupby(archived_in(archive, source, connection_id, start, end), key=_day_of):
            found = [
                d
                for d in (
                    difference(
                        archived,
                        archive.get(archived.key),
                        records=ctx.state,
                        mappings=mappings,
                        customers=ctx.mappings,
                    )
                    for archived in day
                )
                if not args.kind or (d.message is not None and kind_of(d.message) in args.kind)
            ]
            # In the order they arrived (S3 keeps seconds; snapshot versions order the rest).
            found.sort(key=lambda d: (d.archived.stored_at, d.message.version if d.message else 0))
            if queue is not None:
                # "With today's mapping": push rewrites a synced invoice a newer mapping maps anew.
                queued += queue.send_batch(
                    [d.message.model_copy(update={"remap": True}) for d in found if d.message is not None]
                )
            summary.update(d.verdict.value for d in found)
            shown.extend(found[: max(0, SHOWN_EVENTS - len(shown))])
            bar.advance(task, len(found))
    events = sum(summary.values())
    window = f"{start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC"
    title = f"Replay of {connection_id}, {window}" + (" (dry run: what it would do)" if args.dry_run else "")
    ctx.emit(
        {
            "connection_id": connection_id,
            "source": source,
            "from": start.isoformat(),
            "to": end.isoformat(),
            "dry_run": args.dry_run,
            "mapping_version": mappings.connection.mapping_version,
            "events": [d.as_json() for d in shown],
            "events_not_listed": events - len(shown),
            "summary": {v.value: summary.get(v.value, 0) for v in Verdict},
            "queued": queued,
        },
        _table(shown, title, dry_run=args.dry_run) if shown else None,
    )
    if not ctx.json:
        counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(summary.items())) or "no archived events"
        if events > len(shown):
            ctx.say(f"({events - len(shown)} more events not listed; the counts cover all {events})")
        if args.dry_run:
            ctx.say(f"dry run: {counts}; nothing sent")
        else:
            ctx.say(f"{counts}; queued {queued} event(s) for push")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "replay",
        parents=[COMMON],
        help="run the archived webhooks of a window again with today's mapping (--dry-run: the difference)",
        description=(
            "Re-queues every archived webhook of the connection received in the window (UTC). "
            "With --dry-run, prints per event what push would do with today's mapping: create, "
            "update, unchanged, unmapped (with the missing rules), rejected or skipped."
        ),
    )
    parser.add_argument(
        "--from", dest="start", required=True, help="a date (its start), an ISO time or 7d/24h ago"
    )
    parser.add_argument("--to", dest="end", required=True, help="a date (its end), an ISO time, or now")
    parser.add_argument(
        "--source", choices=sorted(SOURCES), help="the archive's source (default: the connection's)"
    )
    parser.add_argument(
        "--kind", action="append", choices=KINDS, help="only events of this kind (repeatable)"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the difference it would make; send nothing"
    )
    parser.add_argument("--yes", action="store_true", help="no question when many events would be sent")
    parser.set_defaults(func=run)
