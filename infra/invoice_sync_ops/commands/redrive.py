"""``invoice-sync redrive``: parked records and dead letters back onto the sync queue.

After the cause is fixed (a mapping rule added, the ledger reconnected), each parked record's
archived event is rebuilt into the message intake queued and sent again, ten to a request; the
dead-letter queue's messages are moved back as they are. Push converges: a parked record at the
same version is not "older" (the version guard lets it through) and carries no content hash (so
it is not "unchanged"); a synced one is a no-op. A parked ``ledger_payment`` record (payments back)
is re-driven as one hint per ledger payment on the ledger events queue (``operation="redrive"``):
payments_back re-reads the payment and tries its parked records afresh. Also home of what
``replay`` shares: the confirmation above a size and the progress bar.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from invoice_sync.models.sync import SyncRecord, SyncStatus
from invoice_sync.store.archive import RawArchive
from invoice_sync.store.queue import DeadLetterQueue, LedgerEventsQueue, SyncQueue
from invoice_sync.sync.replay import plan_redrive
from invoice_sync_ops.commands import COMMON, CliError, Context
from invoice_sync_ops.commands.log import KINDS, record_json, records_table

PARKED = [s.value for s in SyncStatus if s.parked]
# Above this many messages, a run that writes asks first (or needs --yes when nobody can answer).
CONFIRM_ABOVE = 25


def confirm(ctx: Context, args: argparse.Namespace, count: int, what: str) -> None:
    if count <= CONFIRM_ABOVE or getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise CliError(f"{what}: more than {CONFIRM_ABOVE}, so pass --yes to go ahead")
    answer = ctx.errors.input(f"{what}. Go ahead? [y/N] ")
    if answer.strip().lower() not in {"y", "yes"}:
        raise CliError("nothing sent: not confirmed")


@contextmanager
def progress(ctx: Context) -> Iterator[Progress]:
    """A progress bar on stderr, for people at a terminal only (never in --json or a pipe)."""
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=ctx.errors,
        transient=True,
        disable=ctx.json or not ctx.errors.is_terminal,
    )
    with bar:
        yield bar


def _parked(ctx: Context, args: argparse.Namespace, connection_id: str) -> list[SyncRecord]:
    statuses = [SyncStatus(s) for s in (args.status or PARKED)]
    if args.source_id:
        found = [r for r in ctx.state.find(connection_id, args.source_id) if r.status in statuses]
    else:
        found = [r for s in statuses for r in ctx.state.needing_attention(connection_id, s)]
    return [
        r
        for r in found
        if (not args.kind or r.kind in args.kind)
        and (not args.reason or args.reason.lower() in (r.last_error or "").lower())
    ]


def run(args: argparse.Namespace, ctx: Context) -> int:
    connection_id = ctx.connection_id
    connection = ctx.connection(connection_id)
    target = ctx.target
    sqs = target.client("sqs")
    queue = SyncQueue(target.sync_queue_url, sqs)
    dead = DeadLetterQueue(target.dead_letter_queue_url, sqs)
    archive = RawArchive(target.archive_bucket, target.client("s3"))

    records = [] if args.dead_letters_only else _parked(ctx, args, connection_id)
    with progress(ctx) as bar:
        task = bar.add_task("finding archived events", total=len(records))
        plan = plan_redrive(
            _counted(records, bar, task), archive, connection.source, ledger=connection.ledger
        )
    # Before anything is sent: a stack without the queue (older than payments back) fails here,
    # in one line, rather than after the sync queue's share went out.
    ledger_queue = LedgerEventsQueue(target.ledger_events_queue(), sqs) if plan.ledger_events else None
    dead_letters = 0 if args.parked_only else dead.depth().visible
    result = {
        "connection_id": connection_id,
        "dry_run": args.dry_run,
        "records": [record_json(r) for r in plan.records],
        "missing": [record_json(r) for r in plan.missing],
        "not_redrivable": [{**record_json(r), "not_redrivable": why} for r, why in plan.not_redrivable],
        "messages": len(plan.messages),
        "queued": 0,
        "ledger_events": len(plan.ledger_events),
        "ledger_events_queued": 0,
        "dead_letters": dead_letters,
        "dead_letters_moved": 0,
    }
    if not args.dry_run:
        ledger_part = f", {len(plan.ledger_events)} ledger event(s)" if plan.ledger_events else ""
        confirm(
            ctx,
            args,
            len(plan.messages) + len(plan.ledger_events) + dead_letters,
            f"this re-queues {len(plan.messages)} archived event(s){ledger_part} "
            f"and about {dead_letters} dead letter(s)",
        )
        with progress(ctx) as bar:
            sending = bar.add_task("re-queuing parked records", total=len(plan.messages))
            result["queued"] = queue.send_batch(
                plan.messages, delay_seconds=args.delay, progress=lambda n: bar.advance(sending, n)
            )
            if ledger_queue is not None:
                result["ledger_events_queued"] = ledger_queue.send_batch(plan.ledger_events)
            if not args.parked_only:
                moving = bar.add_task("moving dead letters", total=dead_letters or None)
                result["dead_letters_moved"] = dead.redrive(
                    target.sync_queue_url, progress=lambda n: bar.advance(moving, n)
                )
    verb = "would re-drive" if args.dry_run else "re-driven"
    events = f"{len(plan.messages)} archived event(s)"
    if plan.ledger_events:
        events += f", {len(plan.ledger_events)} ledger event(s)"
    table = records_table(plan.records, f"Parked records {verb} ({events})")
    ctx.emit(result, table if plan.records else None)
    if not ctx.json:
        for record in plan.missing:
            ctx.say(
                f"[yellow]no archived event found for {record.kind} {record.source_id}[/]: "
                "re-drive it with `invoice-sync replay` over the days it arrived"
            )
        for record, why in plan.not_redrivable:
            ctx.say(f"[yellow]cannot re-drive {record.kind} {record.source_id}[/]: {why}")
        if args.dry_run:
            ledger_part = f" and {len(plan.ledger_events)} ledger event(s)" if plan.ledger_events else ""
            ctx.say(
                f"dry run: {len(plan.messages)} event(s){ledger_part} for {len(plan.records)} "
                f"parked record(s), {dead_letters} dead letter(s) waiting; nothing sent"
            )
        else:
            ledger_part = (
                f"; {result['ledger_events_queued']} ledger event(s) queued for payments back"
                if plan.ledger_events
                else ""
            )
            ctx.say(
                f"queued {result['queued']} event(s) for {len(plan.records)} parked record(s)"
                f"{ledger_part}; moved {result['dead_letters_moved']} dead letter(s) back to the "
                "sync queue"
            )
    return 0


def _counted(records: list[SyncRecord], bar: Progress, task: TaskID) -> Iterator[SyncRecord]:
    for record in records:
        yield record
        bar.advance(task, 1)


def _delay(text: str) -> int:
    if not text.isdigit() or int(text) > 900:  # SQS's largest DelaySeconds
        raise argparse.ArgumentTypeError("a whole number of seconds from 0 to 900")
    return int(text)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "redrive",
        parents=[COMMON],
        help="re-queue parked records (after adding a mapping, reconnecting) and the dead letters",
        description=(
            "Sends each parked record's archived event to the sync queue again, and moves the "
            "dead-letter queue (shared by every connection) back onto it. Push syncs what can "
            "now sync and parks the rest again, alerting only on a new reason. A parked "
            "ledger_payment record (payments back) goes to the ledger events queue instead, one "
            "event per ledger payment, for payments back to read it again."
        ),
    )
    parser.add_argument(
        "--status", action="append", choices=PARKED, help="only this parked status (repeatable)"
    )
    parser.add_argument("--kind", action="append", choices=KINDS, help="only this kind (repeatable)")
    parser.add_argument("--source-id", help="only this source object")
    parser.add_argument("--reason", help="only records whose reason contains this text")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--parked-only", action="store_true", help="leave the dead-letter queue alone")
    only.add_argument("--dead-letters-only", action="store_true", help="only move the dead letters")
    parser.add_argument(
        "--delay",
        type=_delay,
        default=0,
        metavar="SECONDS",
        help=(
            "hold the events re-driven to the sync queue back this long (0-900), e.g. while a "
            "ledger outage ends (ledger events for payments back are sent at once)"
        ),
    )
    parser.add_argument("--dry-run", action="store_true", help="say what would be sent; send nothing")
    parser.add_argument("--yes", action="store_true", help=f"no question when more than {CONFIRM_ABOVE}")
    parser.set_defaults(func=run)
