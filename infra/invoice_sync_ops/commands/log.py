"""``invoice-sync log``: the sync log. What synced, when, into which ledger document, with which
mapping version; what is parked and why.

Read from the SyncState table through its indexes, never a scan: a window of days through the
day index (newest first), parked statuses through the sparse status index, one source id by key
(every kind). Both directions (design two-way 3.5.3): a record's ``dir`` is ``→`` for what went
from the source into the ledger (push) and ``←`` for a ledger payment sent back to Stripe
(``ledger_payment`` records, payments back). Also home of what the other operations commands
share: reading a time from the command line and a record's stable JSON shape.
"""

from __future__ import annotations

import argparse
import heapq
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import islice
from typing import Any, get_args

from rich.table import Table

from invoice_sync.models.money import Money
from invoice_sync.models.sync import Direction, DocumentKind, SyncRecord, SyncStatus, utcnow
from invoice_sync_ops.commands import COMMON, CliError, Context

DEFAULT_DAYS = 7
KINDS = get_args(DocumentKind)
DIRECTIONS = get_args(Direction)
# The ``dir`` column: into the ledger, or back to the source.
ARROWS: dict[str, str] = {"to_ledger": "→", "to_source": "←"}
STATUSES = [s.value for s in SyncStatus]
_RELATIVE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str, *, end_of_day: bool = False, now: datetime | None = None) -> datetime:
    """A time from the command line, in UTC: ``24h``/``7d``/``30m``/``2w`` ago, a date
    (``2026-11-25``: its start, or its end with ``end_of_day``), an ISO time (naive = UTC) or ``now``."""
    now = now or utcnow()
    value = text.strip()
    if value.lower() == "now":
        return now
    relative = _RELATIVE.match(value)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time.max if end_of_day else time.min, UTC)
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CliError(
            f"cannot read {text!r} as a time: use 24h, 7d, 2026-11-25 or 2026-11-25T10:00:00Z", code=2
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def amount(record: SyncRecord) -> str:
    if record.source_total is None or not record.currency:
        return ""
    return str(Money(minor=record.source_total, currency=record.currency))


def record_json(record: SyncRecord) -> dict[str, Any]:
    """A record for scripts: the same keys every time, None where a value is unknown."""
    money = (
        str(Money(minor=record.source_total, currency=record.currency).to_decimal())
        if record.source_total is not None and record.currency
        else None
    )
    return {
        "connection_id": record.connection_id,
        "kind": record.kind,
        "direction": record.direction,
        "source_id": record.source_id,
        "source_number": record.source_number,
        "source_version": record.source_version,
        "status": record.status.value,
        "ledger_id": record.ledger_id,
        "ledger_number": record.ledger_number,
        "amount": money,
        "currency": record.currency,
        "source_total": record.source_total,
        "ledger_total": record.ledger_total,
        "mapping_version": record.mapping_version,
        "reason": record.last_error,
        "alerted_reason": record.alerted_reason,
        "attempts": record.attempts,
        "event_id": record.event_id,
        "archive_key": record.archive_key,
        # Payments back: the Stripe invoice a ledger payment pays, and the Stripe object holding
        # the money now (the invoice, paid out of band, or a payment record pr_…).
        "source_target": record.source_target,
        "stripe_object": record.stripe_object,
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "updated_at": record.updated_at.isoformat() if record.updated_at else None,
    }


_STYLE = {"synced": "green", "needs_mapping": "yellow", "rejected": "red", "failed": "red", "pending": "cyan"}


def records_table(records: Iterable[SyncRecord], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("time (UTC)", overflow="fold")
    table.add_column("dir", no_wrap=True, min_width=3)
    for column in (
        "kind",
        "source",
        "number",
        "status",
        "ledger doc",
        "amount",
        "map v",
        "reason",
    ):
        table.add_column(column, overflow="fold")
    for record in records:
        ledger = ""
        if record.ledger_id and record.ledger_number and record.ledger_number != record.ledger_id:
            ledger = f"{record.ledger_id} ({record.ledger_number})"
        elif record.ledger_id:
            ledger = record.ledger_id
        status = record.status.value
        style = _STYLE.get(status)
        table.add_row(
            record.updated_at.strftime("%Y-%m-%d %H:%M:%S") if record.updated_at else "",
            ARROWS.get(record.direction, record.direction),
            record.kind,
            record.source_id,
            record.source_number or "",
            f"[{style}]{status}[/]" if style else status,
            ledger,
            amount(record),
            str(record.mapping_version) if record.mapping_version is not None else "",
            record.last_error or "",
        )
    return table


def _selected(ctx: Context, args: argparse.Namespace, connection_id: str) -> Iterator[SyncRecord]:
    since = parse_when(args.since) if args.since else None
    until = parse_when(args.until, end_of_day=True) if args.until else None
    statuses = {SyncStatus(s) for s in args.status or ()}
    kinds = set(args.kind or ())
    direction = getattr(args, "direction", None)

    def wanted(record: SyncRecord) -> bool:
        return (
            (not statuses or record.status in statuses)
            and (not kinds or record.kind in kinds)
            and (direction is None or record.direction == direction)
            and (since is None or record.updated_at is None or record.updated_at >= since)
            and (until is None or record.updated_at is None or record.updated_at <= until)
        )

    if args.source_id:
        found = ctx.state.find(connection_id, args.source_id)
        yield from sorted(filter(wanted, found), key=_newest_first)
        return
    if statuses and all(s.parked for s in statuses):
        # The sparse status index holds exactly these, however old, each status newest first:
        # merged, the first --limit are read and no more.
        newest = (ctx.state.needing_attention(connection_id, s, newest_first=True) for s in statuses)
        yield from filter(wanted, heapq.merge(*newest, key=_newest_first))
        return
    start = since or utcnow() - timedelta(days=DEFAULT_DAYS)
    yield from filter(wanted, ctx.state.by_day(connection_id, start, until))


def _newest_first(record: SyncRecord) -> float:
    return -(record.updated_at.timestamp() if record.updated_at else 0.0)


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.limit < 1:
        raise CliError("--limit must be at least 1", code=2)
    connection_id = ctx.connection_id
    ctx.connection(connection_id)
    records = list(islice(_selected(ctx, args, connection_id), args.limit))
    window = (
        f"source id {args.source_id}"
        if args.source_id
        else f"since {args.since}"
        if args.since
        else f"last {DEFAULT_DAYS} days"
        if not (args.status and all(SyncStatus(s).parked for s in args.status))
        else "every parked record"
    )
    title = (
        f"Sync log of {connection_id}: {window}, newest first ({len(records)} shown, at most {args.limit})"
    )
    ctx.emit([record_json(r) for r in records], records_table(records, title))
    if not records and not ctx.json:
        ctx.say("nothing matches")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "log",
        parents=[COMMON],
        help="the sync log: what synced when, into which ledger document; what is parked and why",
        description=(
            "The sync log, newest first: time, direction (→ into the ledger, ← back to the source), "
            "kind, source id and number, status, ledger document, "
            f"amount, mapping version and reason. Without filters: the last {DEFAULT_DAYS} days."
        ),
    )
    parser.add_argument("--status", action="append", choices=STATUSES, help="only this status (repeatable)")
    parser.add_argument("--since", help="written since: 24h, 7d, a date or an ISO time (UTC)")
    parser.add_argument("--until", help="written until: a date (its end) or an ISO time (UTC)")
    parser.add_argument("--source-id", help="one source object (invoice, payment, credit note, refund) by id")
    parser.add_argument("--kind", action="append", choices=KINDS, help="only this kind (repeatable)")
    parser.add_argument(
        "--direction",
        choices=DIRECTIONS,
        help="only into the ledger (to_ledger, → in the table) or back to Stripe (to_source, ←)",
    )
    parser.add_argument("--limit", type=int, default=50, help="at most this many records (default 50)")
    parser.set_defaults(func=run)
